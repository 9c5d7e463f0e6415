-- The 20 visitors with the most hits over the last 7 days (curated hits).
SELECT clientid,
       count(*) AS hits,
       count_if(page_gender = 'M') AS m,
       count_if(page_gender = 'F') AS f,
       max(event_time) AS last_seen
FROM "${database}"."hits"
WHERE dt >= date_format(current_date - INTERVAL '6' DAY, '%Y-%m-%d')
GROUP BY clientid
ORDER BY hits DESC, clientid
LIMIT 20
