-- One row per event. Soft-deleted events are kept, flagged: their orders are real sales.
SELECT
    id AS event_id,
    tenant_id,
    venue_id,
    name AS event_name,
    status AS event_status,
    approval,
    visibility,
    currency,
    location__city AS city,
    location__country AS country,
    location__time_zone AS time_zone,
    CAST(entry_starts_at AS TIMESTAMPTZ) AS entry_starts_at,
    CAST(entry_ends_at AS TIMESTAMPTZ) AS entry_ends_at,
    CAST(publish_at AS TIMESTAMPTZ) AS publish_at,
    CAST(created_at AS TIMESTAMPTZ) AS created_at,
    CAST(updated_at AS TIMESTAMPTZ) AS updated_at,
    CAST(deleted_at AS TIMESTAMPTZ) AS deleted_at,
    deleted_at IS NOT NULL AS is_deleted
FROM {{ latest(source('session_services', 'events'), 'id', 'updated_at DESC NULLS LAST') }} AS src
