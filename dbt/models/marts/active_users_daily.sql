-- Per project and day (UTC): daily, weekly (7 days to this one) and monthly (30 days) active
-- users. Incremental like `active_user_days`: a late event changes DAU of its day and WAU/MAU
-- of the 29 days after it, all within what the lookback recomputes.
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='day') }}

{% set lookback = "INTERVAL '" ~ var('events_lookback_hours') ~ " hours'" %}
WITH user_days AS (
    SELECT * FROM {{ ref('active_user_days') }}
    {% if is_incremental() %}
    WHERE day >= {{ lookback_start('day', lookback) }} - INTERVAL '29 days'
    {% endif %}
),
days AS (
    SELECT DISTINCT project_id, day FROM user_days
    {% if is_incremental() %}
    WHERE day >= {{ lookback_start('day', lookback) }}
    {% endif %}
)
SELECT
    d.project_id,
    d.day,
    count(DISTINCT u.distinct_id) FILTER (WHERE u.day = d.day) AS dau,
    count(DISTINCT u.distinct_id) FILTER (WHERE u.day > d.day - INTERVAL '7 days') AS wau,
    count(DISTINCT u.distinct_id) AS mau
FROM days AS d
JOIN user_days AS u
  ON u.project_id = d.project_id AND u.day > d.day - INTERVAL '30 days' AND u.day <= d.day
GROUP BY 1, 2
