-- One row per project, day (UTC) and active user (distinct_id): the base of DAU/WAU/MAU and
-- retention. Incremental: events become visible up to 48 h late, so every run recomputes the
-- days from 48 h before the newest day it holds.
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='day') }}

SELECT
    project_id,
    CAST(occurred_at AS DATE) AS day,
    distinct_id,
    count(*) AS events
FROM {{ ref('stg_sessionvision__events') }}
{% if is_incremental() %}
WHERE occurred_at
      >= {{ lookback_start('day', "INTERVAL '" ~ var('events_lookback_hours') ~ " hours'") }}
{% endif %}
GROUP BY 1, 2, 3
