-- sessionsync's run log: one row per resource per run (syncs), or per model (transforms).
SELECT
    run_id || '/' || source || '/' || resource AS run_resource_key,
    run_id,
    source AS source_name,
    resource AS resource_name,
    mode AS run_mode,
    status AS run_status,
    CAST(started_at AS TIMESTAMPTZ) AS started_at,
    CAST(finished_at AS TIMESTAMPTZ) AS finished_at,
    CAST(rows_loaded AS BIGINT) AS rows_loaded,
    CAST(high_water_mark AS TIMESTAMPTZ) AS high_water_mark_at,
    error
FROM {{ source('sessionsync_ops', 'sessionsync_runs') }}
