SELECT
    id AS venue_id,
    tenant_id,
    name AS venue_name,
    city,
    country,
    CAST(capacity AS BIGINT) AS capacity,
    CAST(created_at AS TIMESTAMPTZ) AS created_at,
    CAST(updated_at AS TIMESTAMPTZ) AS updated_at
FROM {{ latest(source('session_services', 'venues'), 'id', 'updated_at DESC NULLS LAST') }} AS src
