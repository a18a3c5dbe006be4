-- The funnel of `var('funnel_steps')` per project: users who did each step after the one
-- before it (any time later), and conversion from the previous and the first step.
{% set steps = var('funnel_steps') %}
WITH events AS (
    SELECT project_id, distinct_id, event_name, occurred_at
    FROM {{ ref('stg_sessionvision__events') }}
    WHERE event_name IN ({% for s in steps %}'{{ s }}'{{ ", " if not loop.last }}{% endfor %})
),
step_1 AS (
    SELECT project_id, distinct_id, min(occurred_at) AS at
    FROM events WHERE event_name = '{{ steps[0] }}' GROUP BY 1, 2
)
{% for s in steps[1:] %}
, step_{{ loop.index + 1 }} AS (
    SELECT e.project_id, e.distinct_id, min(e.occurred_at) AS at
    FROM events AS e
    JOIN step_{{ loop.index }} AS p USING (project_id, distinct_id)
    WHERE e.event_name = '{{ s }}' AND e.occurred_at >= p.at
    GROUP BY 1, 2
)
{% endfor %}
, counts AS (
{% for s in steps %}
    SELECT project_id, {{ loop.index }} AS step_number, '{{ s }}' AS step_name,
           count(*) AS users
    FROM step_{{ loop.index }} GROUP BY 1, 2, 3
    {{ "UNION ALL" if not loop.last }}
{% endfor %}
)
SELECT
    project_id || '/' || CAST(step_number AS VARCHAR) AS funnel_step_key,
    project_id,
    step_number,
    step_name,
    users,
    {{ ratio('users', 'lag(users) OVER (PARTITION BY project_id ORDER BY step_number)') }}
        AS conversion_from_previous,
    {{ ratio('users', 'first_value(users) OVER (PARTITION BY project_id ORDER BY step_number)') }}
        AS conversion_from_first
FROM counts
