-- Hits per UTC hour by page gender, yesterday and today (curated hits).
SELECT date_trunc('hour', event_time) AS hour_utc,
       count(*) AS hits,
       count_if(page_gender = 'M') AS m,
       count_if(page_gender = 'F') AS f
FROM "${database}"."hits"
WHERE dt >= date_format(current_date - INTERVAL '1' DAY, '%Y-%m-%d')
GROUP BY 1
ORDER BY 1
