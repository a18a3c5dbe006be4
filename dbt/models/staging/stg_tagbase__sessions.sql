-- Verification sessions this account can read (not-found ones left out).
SELECT
    id AS session_id,
    tag_id,
    CAST(inserted_at AS TIMESTAMPTZ) AS created_at,
    CAST(fetched_at AS TIMESTAMPTZ) AS fetched_at
FROM {{ latest(source('tagbase', 'sessions'), 'id', 'fetched_at DESC NULLS LAST',
               where='found') }} AS src
