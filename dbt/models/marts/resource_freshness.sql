-- Per source and resource (and per model, for transforms): the last run, the last successful
-- one, the newest record loaded, and how stale that is at the time of the transform.
WITH ranked AS (
    SELECT *,
        row_number() OVER (PARTITION BY source_name, resource_name ORDER BY finished_at DESC)
            AS newest_first
    FROM {{ ref('stg_sessionsync__runs') }}
),
ok AS (
    SELECT source_name, resource_name,
           max(finished_at) AS last_success_at,
           max(high_water_mark_at) AS high_water_mark_at
    FROM ranked WHERE run_status = 'ok' GROUP BY 1, 2
)
SELECT
    r.source_name || '.' || r.resource_name AS resource_key,
    r.source_name,
    r.resource_name,
    r.finished_at AS last_run_at,
    r.run_status AS last_status,
    r.error AS last_error,
    ok.last_success_at,
    ok.high_water_mark_at,
    {{ round_to(seconds('now() - ok.last_success_at') ~ ' / 3600.0', 3) }} AS hours_since_success,
    {{ round_to(seconds('now() - ok.high_water_mark_at') ~ ' / 3600.0', 3) }} AS lag_hours
FROM ranked AS r
LEFT JOIN ok USING (source_name, resource_name)
WHERE r.newest_first = 1
