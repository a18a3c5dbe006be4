SELECT
    project_id || '/' || name AS event_definition_key,
    project_id,
    name AS event_name,
    CAST(volume_30d AS BIGINT) AS volume_30d,
    CAST(last_seen AS TIMESTAMPTZ) AS last_seen_at
FROM {{ source('sessionvision', 'event_definitions') }}
QUALIFY row_number() OVER (PARTITION BY project_id, name ORDER BY last_seen DESC) = 1
