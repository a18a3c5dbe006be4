-- One row per order line (dlt's child table joined back to its order).
SELECT
    o.order_id || '/' || CAST(i._dlt_list_idx AS VARCHAR) AS order_item_id,
    o.order_id,
    o.event_id,
    i.admission_id,
    i.section_id,
    CAST(i.quantity AS BIGINT) AS quantity,
    CAST(i.price AS BIGINT) AS price
FROM {{ source('session_services', 'orders__items') }} AS i
JOIN {{ ref('stg_session_services__orders') }} AS o ON o._dlt_id = i._dlt_parent_id
