-- Gender split per day, last 14 days, from the daily rollups: hits by page
-- gender, and visitors by the gender most of their hits had that day.
SELECT dt AS day,
       sum(m) AS hits_m,
       sum(f) AS hits_f,
       count_if(m > f) AS visitors_m,
       count_if(f > m) AS visitors_f,
       count_if(m = f) AS visitors_tied
FROM "${database}"."daily"
WHERE dt >= date_format(current_date - INTERVAL '13' DAY, '%Y-%m-%d')
GROUP BY dt
ORDER BY dt DESC
