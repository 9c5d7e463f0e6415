-- Gender split per day, last 14 days, from the daily rollups:
-- hits by page gender, and visitors by the gender most of their hits had that day.
-- Run from the directory that holds the data dir: duckdb -c ".read queries/gender_split_per_day.sql"
SELECT dt AS day,
       sum(m) AS hits_m,
       sum(f) AS hits_f,
       count(*) FILTER (WHERE m > f) AS visitors_m,
       count(*) FILTER (WHERE f > m) AS visitors_f,
       count(*) FILTER (WHERE m = f) AS visitors_tied
FROM read_parquet('data/curated/daily/*/daily.parquet', hive_partitioning = true)
GROUP BY dt
ORDER BY dt DESC
LIMIT 14;
