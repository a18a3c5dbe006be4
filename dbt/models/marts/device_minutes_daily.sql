-- Per organization, platform and day (UTC): released sessions split at midnight, so a session
-- held across midnight counts its minutes on both days. Hold times (p50/p95) are of sessions
-- created that day; peak concurrent devices is the most sessions held at one instant.
-- Sessions still held are counted once released.
WITH sessions AS (
    SELECT *, {{ seconds('released_at - created_at') }} / 60.0 AS hold_minutes
    FROM {{ ref('stg_mobilenext__sessions') }} WHERE is_released
),
pieces AS (
    SELECT
        s.organization_id,
        s.platform,
        s.session_id,
        CAST(d.day_start AS DATE) AS day,
        greatest(s.created_at, d.day_start) AS piece_start,
        least(s.released_at, d.day_start + INTERVAL '1 day') AS piece_end
    FROM sessions AS s,
        LATERAL (SELECT {{ each_day('s.created_at', 's.released_at') }} AS day_start) AS d
),
minutes AS (
    SELECT organization_id, platform, day,
           count(DISTINCT session_id) AS sessions,
           sum({{ seconds('piece_end - piece_start') }}) / 60.0 AS device_minutes
    FROM pieces
    GROUP BY 1, 2, 3
),
holds AS (
    SELECT organization_id, platform, CAST(created_at AS DATE) AS day,
           count(*) AS sessions_started,
           {{ quantile('hold_minutes', 0.5) }} AS p50_hold_minutes,
           {{ quantile('hold_minutes', 0.95) }} AS p95_hold_minutes
    FROM sessions
    GROUP BY 1, 2, 3
),
steps AS (
    SELECT organization_id, platform, day, piece_start AS at_time, 1 AS delta FROM pieces
    UNION ALL
    SELECT organization_id, platform, day, piece_end AS at_time, -1 AS delta FROM pieces
),
concurrent AS (
    SELECT organization_id, platform, day,
           sum(delta) OVER (PARTITION BY organization_id, platform, day
                            ORDER BY at_time, delta ROWS UNBOUNDED PRECEDING) AS held
    FROM steps
),
peaks AS (
    SELECT organization_id, platform, day, max(held) AS peak_concurrent_devices
    FROM concurrent
    GROUP BY 1, 2, 3
)
SELECT
    m.organization_id,
    m.platform,
    m.day,
    m.sessions,
    coalesce(h.sessions_started, 0) AS sessions_started,
    {{ round_to('m.device_minutes', 3) }} AS device_minutes,
    {{ round_to('h.p50_hold_minutes', 3) }} AS p50_hold_minutes,
    {{ round_to('h.p95_hold_minutes', 3) }} AS p95_hold_minutes,
    p.peak_concurrent_devices
FROM minutes AS m
LEFT JOIN holds AS h USING (organization_id, platform, day)
LEFT JOIN peaks AS p USING (organization_id, platform, day)
