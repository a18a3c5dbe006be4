SELECT
    id AS venue_id,
    tenant_id,
    name AS venue_name,
    city,
    country,
    CAST(capacity AS BIGINT) AS capacity,
    CAST(created_at AS TIMESTAMPTZ) AS created_at,
    CAST(updated_at AS TIMESTAMPTZ) AS updated_at
FROM {{ source('session_services', 'venues') }}
QUALIFY row_number() OVER (PARTITION BY id ORDER BY updated_at DESC) = 1
