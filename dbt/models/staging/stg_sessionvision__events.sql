-- Product analytics events; `properties` stays JSON text.
SELECT
    id AS event_id,
    project_id,
    event AS event_name,
    distinct_id,
    session_id,
    CAST("timestamp" AS TIMESTAMPTZ) AS occurred_at,
    current_url,
    browser,
    device_type,
    country,
    referrer,
    properties
FROM {{ latest(source('sessionvision', 'events'), 'project_id, id', '"timestamp"') }}
    AS src
