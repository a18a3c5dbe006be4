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
        END AS bucket,
        CASE
            WHEN duration_seconds < 10 THEN '<10s'
            WHEN duration_seconds < 30 THEN '10-30s'
            WHEN duration_seconds < 60 THEN '30-60s'
            WHEN duration_seconds < 180 THEN '1-3m'
            WHEN duration_seconds < 600 THEN '3-10m'
            WHEN duration_seconds < 1800 THEN '10-30m'
            ELSE '30m+'
        END AS length_bucket
    FROM {{ ref('stg_sessionvision__sessions') }}
)
SELECT
    project_id,
    bucket AS bucket_number,
    length_bucket,
    count(*) AS sessions,
    {{ ratio('count(*)', 'sum(count(*)) OVER (PARTITION BY project_id)') }} AS share
FROM buckets
GROUP BY project_id, bucket, length_bucket
