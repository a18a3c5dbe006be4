-- Admission types (price tiers) of an event.
SELECT
    id AS admission_id,
    tenant_id,
    event_id,
    name AS admission_name,
    CAST(price AS BIGINT) AS price,
    currency,
    CAST(capacity AS BIGINT) AS capacity,
    CAST(created_at AS TIMESTAMPTZ) AS created_at,
    CAST(updated_at AS TIMESTAMPTZ) AS updated_at
FROM {{ latest(source('session_services', 'admissions'), 'id', 'updated_at DESC NULLS LAST') }}
    AS src
