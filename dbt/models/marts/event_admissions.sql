-- Per event: tickets sold (not cancelled) against tickets admitted (scanned in at least once).
-- No-shows count only once the event has ended.
WITH tickets AS (
    SELECT
        event_id,
        count(*) FILTER (WHERE NOT is_cancelled) AS tickets_sold,
        count(*) FILTER (WHERE is_admitted) AS tickets_admitted,
        count(*) FILTER (WHERE is_cancelled) AS tickets_cancelled
    FROM {{ ref('stg_session_services__tickets') }}
    GROUP BY event_id
)
SELECT
    e.tenant_id,
    e.event_id,
    e.event_name,
    e.event_status,
    e.is_deleted,
    e.entry_starts_at,
    e.entry_ends_at,
    coalesce(t.tickets_sold, 0) AS tickets_sold,
    coalesce(t.tickets_admitted, 0) AS tickets_admitted,
    coalesce(t.tickets_cancelled, 0) AS tickets_cancelled,
    {{ ratio('t.tickets_admitted', 't.tickets_sold') }} AS admission_rate,
    CASE WHEN e.event_status = 'ENDED'
         THEN coalesce(t.tickets_sold, 0) - coalesce(t.tickets_admitted, 0) END AS no_shows
FROM {{ ref('stg_session_services__events') }} AS e
LEFT JOIN tickets AS t USING (event_id)
