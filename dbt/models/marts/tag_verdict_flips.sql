-- Each time a tag's final verdict (valid or invalid; pending ignored) differs from its
-- previous one: a tag that flips may be cloned or tampered with.
WITH final AS (
    SELECT
        tag_id,
        verification_id,
        verdict,
        verified_at,
        lag(verdict) OVER (PARTITION BY tag_id ORDER BY verified_at, verification_id)
            AS previous_verdict,
        lag(verified_at) OVER (PARTITION BY tag_id ORDER BY verified_at, verification_id)
            AS previous_verified_at
    FROM {{ ref('stg_tagbase__verifications') }}
    WHERE verdict IN ('valid', 'invalid')
)
SELECT
    verification_id,
    tag_id,
    previous_verdict AS from_verdict,
    verdict AS to_verdict,
    previous_verified_at,
    verified_at AS flipped_at
FROM final
WHERE previous_verdict IS NOT NULL AND previous_verdict <> verdict
