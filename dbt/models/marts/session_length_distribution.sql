-- Per project: sessions by length bucket.
WITH buckets AS (
    SELECT
        project_id,
        CASE
            WHEN duration_seconds < 10 THEN 1
            WHEN duration_seconds < 30 THEN 2
            WHEN duration_seconds < 60 THEN 3
            WHEN duration_seconds < 180 THEN 4
            WHEN duration_seconds < 600 THEN 5
            WHEN duration_seconds < 1800 THEN 6
            ELSE 7
        END AS bucket
    FROM {{ ref('stg_sessionvision__sessions') }}
)
SELECT
    project_id,
    bucket AS bucket_number,
    ['<10s', '10-30s', '30-60s', '1-3m', '3-10m', '10-30m', '30m+'][bucket] AS length_bucket,
    count(*) AS sessions,
    round(count(*) / sum(count(*)) OVER (PARTITION BY project_id), 4) AS share
FROM buckets
GROUP BY project_id, bucket
