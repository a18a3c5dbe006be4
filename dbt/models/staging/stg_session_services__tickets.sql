-- One row per ticket. A ticket is admitted once scanned in (a later check-out scan sets it
-- ACTIVE again but it was admitted); cancelled tickets (refunds) are neither sold nor admitted.
SELECT
    id AS ticket_id,
    tenant_id,
    order_id,
    event_id,
    admission_id,
    status AS ticket_status,
    status = 'CANCELLED' AS is_cancelled,
    scanned_at IS NOT NULL AND status <> 'CANCELLED' AS is_admitted,
    CAST(scanned_at AS TIMESTAMPTZ) AS scanned_at,
    CAST(created_at AS TIMESTAMPTZ) AS created_at,
    CAST(updated_at AS TIMESTAMPTZ) AS updated_at
FROM {{ latest(source('session_services', 'tickets'), 'id', 'updated_at DESC NULLS LAST') }} AS src
