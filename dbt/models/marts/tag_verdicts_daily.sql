-- Per tag and day (UTC): verifications by verdict, first and last scan of the day.
SELECT
    v.tag_id,
    CAST(v.verified_at AS DATE) AS day,
    count(*) AS verifications,
    count(*) FILTER (WHERE v.verdict = 'valid') AS valid,
    count(*) FILTER (WHERE v.verdict = 'invalid') AS invalid,
    count(*) FILTER (WHERE v.verdict = 'pending') AS pending,
    min(v.verified_at) AS first_seen_at,
    max(v.verified_at) AS last_seen_at,
    bool_or(t.tag_id IS NOT NULL) AS is_known_tag
FROM {{ ref('stg_tagbase__verifications') }} AS v
LEFT JOIN {{ ref('stg_tagbase__tags') }} AS t USING (tag_id)
GROUP BY 1, 2
