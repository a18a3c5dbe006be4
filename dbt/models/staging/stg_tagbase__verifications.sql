-- One row per verification (scan) the integration logged; `verdict` is its status.
SELECT
    id AS verification_id,
    tag_id,
    session_id,
    status AS verdict,
    CAST(inserted_at AS TIMESTAMPTZ) AS verified_at
FROM {{ latest(source('tagbase', 'verifications'), 'id', 'inserted_at DESC NULLS LAST') }} AS src
