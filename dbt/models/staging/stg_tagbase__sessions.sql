-- Verification sessions this account can read (not-found ones left out).
SELECT
    id AS session_id,
    tag_id,
    CAST(inserted_at AS TIMESTAMPTZ) AS created_at,
    CAST(fetched_at AS TIMESTAMPTZ) AS fetched_at
FROM {{ source('tagbase', 'sessions') }}
WHERE found
QUALIFY row_number() OVER (PARTITION BY id ORDER BY fetched_at DESC) = 1
