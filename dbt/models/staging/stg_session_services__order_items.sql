-- One row per order line: `orders__items` is keyed by order id and line (the position in the
-- order's `items` list), joined to its order for the event.
SELECT
    o.order_id || '/' || CAST(i.line AS VARCHAR) AS order_item_id,
    o.order_id,
    o.event_id,
    i.admission_id,
    i.section_id,
    CAST(i.quantity AS BIGINT) AS quantity,
    CAST(i.price AS BIGINT) AS price
FROM {{ source('session_services', 'orders__items') }} AS i
JOIN {{ ref('stg_session_services__orders') }} AS o ON o.order_id = i.order_id
