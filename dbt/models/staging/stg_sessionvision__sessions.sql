SELECT
    project_id || '/' || id AS session_key,
    id AS session_id,
    project_id,
    distinct_id,
    CAST(start_time AS TIMESTAMPTZ) AS started_at,
    CAST(end_time AS TIMESTAMPTZ) AS ended_at,
    CAST(duration AS BIGINT) AS duration_seconds,
    CAST(pageview_count AS BIGINT) AS pageviews,
    CAST(event_count AS BIGINT) AS events,
    is_bounce,
    entry_url,
    exit_url,
    country,
    device_type,
    browser
FROM {{ latest(source('sessionvision', 'sessions'), 'project_id, id', 'end_time DESC NULLS LAST') }}
    AS src
