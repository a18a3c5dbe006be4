-- One row per order. Money in minor units as the API sends it; refunds are zero or negative.
SELECT
    id AS order_id,
    tenant_id,
    event_id,
    customer__id AS customer_id,
    status AS order_status,
    status IN ('SUCCESSFUL', 'DISPUTED') AS is_paid,
    refunded < 0 AS is_refunded,
    currency,
    CAST(total AS BIGINT) AS total,
    CAST(gross AS BIGINT) AS gross,
    CAST(base AS BIGINT) AS base,
    CAST(booking AS BIGINT) AS booking,
    CAST(shipping AS BIGINT) AS shipping,
    CAST(discount AS BIGINT) AS discount,
    CAST(refunded AS BIGINT) AS refunded,
    CAST(gateway AS BIGINT) AS gateway,
    CAST(net AS BIGINT) AS net,
    CAST(created_at AS TIMESTAMPTZ) AS created_at,
    CAST(updated_at AS TIMESTAMPTZ) AS updated_at
FROM {{ latest(source('session_services', 'orders'), 'id', 'updated_at DESC NULLS LAST') }} AS src
