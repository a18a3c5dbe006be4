SELECT
    project_id || '/' || name AS event_definition_key,
    project_id,
    name AS event_name,
    CAST(volume_30d AS BIGINT) AS volume_30d,
    CAST(last_seen AS TIMESTAMPTZ) AS last_seen_at
FROM {{ latest(source('sessionvision', 'event_definitions'), 'project_id, name',
               'last_seen DESC NULLS LAST') }} AS src
