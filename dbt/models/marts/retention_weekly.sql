-- Weekly retention cohorts per project: users by the ISO week (Monday, UTC) they were first
-- active, and how many of them were active again N weeks later.
WITH weeks AS (
    SELECT DISTINCT project_id, distinct_id, CAST(date_trunc('week', day) AS DATE) AS week
    FROM {{ ref('active_user_days') }}
),
cohorts AS (
    SELECT project_id, distinct_id, min(week) AS cohort_week FROM weeks GROUP BY 1, 2
),
sizes AS (
    SELECT project_id, cohort_week, count(*) AS cohort_users FROM cohorts GROUP BY 1, 2
)
SELECT
    c.project_id,
    c.cohort_week,
    CAST((w.week - c.cohort_week) / 7 AS INTEGER) AS weeks_since,  -- both are Mondays
    s.cohort_users,
    count(*) AS active_users,
    {{ ratio('count(*)', 's.cohort_users') }} AS retention
FROM cohorts AS c
JOIN weeks AS w USING (project_id, distinct_id)
JOIN sizes AS s USING (project_id, cohort_week)
GROUP BY 1, 2, 3, 4
