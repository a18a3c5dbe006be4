-- Tags this account can read. Not-found ones (another account's, or deleted) are left out;
-- `tag_verdicts_daily.is_known_tag` keeps that fact for BI.
SELECT
    id AS tag_id,
    protocol,
    url,
    status AS tag_status,
    status = 'configured' AS is_configured,
    CAST(configured_at AS TIMESTAMPTZ) AS configured_at,
    CAST(inserted_at AS TIMESTAMPTZ) AS created_at,
    CAST(fetched_at AS TIMESTAMPTZ) AS fetched_at
FROM {{ latest(source('tagbase', 'tags'), 'id', 'fetched_at DESC NULLS LAST',
               where='found') }} AS src
