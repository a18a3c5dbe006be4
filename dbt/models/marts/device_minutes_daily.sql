-- Per organization, platform and day (UTC): released sessions split at midnight, so a session
-- held across midnight counts its minutes on both days. Hold times (p50/p95) are of sessions
-- created that day; peak concurrent devices is the most sessions held at one instant.
-- Sessions still held are counted once released.
WITH sessions AS (
    SELECT * FROM {{ ref('stg_mobilenext__sessions') }} WHERE is_released
),
pieces AS (
    SELECT
        s.organization_id,
        s.platform,
        s.session_id,
        CAST(d.day_start AS DATE) AS day,
        greatest(s.created_at, d.day_start) AS piece_start,
        least(s.released_at, d.day_start + INTERVAL 1 DAY) AS piece_end
    FROM sessions AS s,
        LATERAL (SELECT unnest(generate_series(date_trunc('day', s.created_at),
                                               date_trunc('day', s.released_at),
                                               INTERVAL 1 DAY)) AS day_start) AS d
),
minutes AS (
    SELECT organization_id, platform, day,
           count(DISTINCT session_id) AS sessions,
           sum(epoch(piece_end - piece_start)) / 60.0 AS device_minutes
    FROM pieces
    GROUP BY ALL
),
holds AS (
    SELECT organization_id, platform, CAST(created_at AS DATE) AS day,
           count(*) AS sessions_started,
           quantile_cont(epoch(released_at - created_at) / 60.0, 0.5) AS p50_hold_minutes,
           quantile_cont(epoch(released_at - created_at) / 60.0, 0.95) AS p95_hold_minutes
    FROM sessions
    GROUP BY ALL
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
    GROUP BY ALL
)
SELECT
    m.organization_id,
    m.platform,
    m.day,
    m.sessions,
    coalesce(h.sessions_started, 0) AS sessions_started,
    round(m.device_minutes, 3) AS device_minutes,
    round(h.p50_hold_minutes, 3) AS p50_hold_minutes,
    round(h.p95_hold_minutes, 3) AS p95_hold_minutes,
    p.peak_concurrent_devices
FROM minutes AS m
LEFT JOIN holds AS h USING (organization_id, platform, day)
LEFT JOIN peaks AS p USING (organization_id, platform, day)
