-- Hits per UTC hour by page gender, from the curated hits.
SELECT date_trunc('hour', event_time AT TIME ZONE 'UTC') AS hour_utc,
       count(*) AS hits,
       count(*) FILTER (WHERE page_gender = 'M') AS m,
       count(*) FILTER (WHERE page_gender = 'F') AS f
FROM read_parquet('data/curated/hits/*/*.parquet', hive_partitioning = true)
GROUP BY hour_utc
ORDER BY hour_utc;
