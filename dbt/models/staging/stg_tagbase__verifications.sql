-- One row per verification (scan) the integration logged; `verdict` is its status.
SELECT
    id AS verification_id,
    tag_id,
    session_id,
    status AS verdict,
    CAST(inserted_at AS TIMESTAMPTZ) AS verified_at
FROM {{ source('tagbase', 'verifications') }}
QUALIFY row_number() OVER (PARTITION BY id ORDER BY inserted_at DESC) = 1
