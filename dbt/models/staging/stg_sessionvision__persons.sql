SELECT
    project_id || '/' || id AS person_key,
    id AS person_id,
    project_id,
    distinct_id,
    user_id,
    anonymous_id,
    user_id IS NOT NULL AS is_identified,
    country,
    device_type,
    browser,
    properties,
    CAST(created_at AS TIMESTAMPTZ) AS created_at,
    CAST(last_seen AS TIMESTAMPTZ) AS last_seen_at
FROM {{ latest(source('sessionvision', 'persons'), 'project_id, id', 'last_seen DESC NULLS LAST') }}
    AS src
