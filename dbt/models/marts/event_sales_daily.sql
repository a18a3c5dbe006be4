-- Per tenant, event and day (UTC, of the order's creation): paid orders, tickets, money.
-- Incremental: refunds change orders up to 60 days after they were placed, so every run
-- recomputes the last 60 days it holds, and every later day.
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='day') }}

WITH orders AS (
    SELECT * FROM {{ ref('stg_session_services__orders') }}
    WHERE is_paid
    {% if is_incremental() %}
      AND CAST(created_at AS DATE)
          >= {{ lookback_start('day', "INTERVAL '" ~ var('refunds_lookback_days') ~ " days'") }}
    {% endif %}
),
items AS (
    SELECT order_id, sum(quantity) AS tickets
    FROM {{ ref('stg_session_services__order_items') }}
    GROUP BY order_id
)
SELECT
    o.tenant_id,
    o.event_id,
    CAST(o.created_at AS DATE) AS day,
    min(o.currency) AS currency,
    count(*) AS orders,
    CAST(coalesce(sum(i.tickets), 0) AS BIGINT) AS tickets,
    CAST(sum(o.gross) AS BIGINT) AS gross,
    CAST(-sum(o.refunded) AS BIGINT) AS refunds,
    count(*) FILTER (WHERE o.is_refunded) AS refunded_orders,
    CAST(sum(o.net) AS BIGINT) AS net
FROM orders AS o
LEFT JOIN items AS i USING (order_id)
GROUP BY 1, 2, 3
