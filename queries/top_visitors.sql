-- The 20 visitors with the most hits, from the curated hits (one row per counted hit).
SELECT clientid,
       count(*) AS hits,
       count(*) FILTER (WHERE page_gender = 'M') AS m,
       count(*) FILTER (WHERE page_gender = 'F') AS f,
       max(event_time) AS last_seen
FROM read_parquet('data/curated/hits/*/*.parquet', hive_partitioning = true)
GROUP BY clientid
ORDER BY hits DESC, clientid
LIMIT 20;
