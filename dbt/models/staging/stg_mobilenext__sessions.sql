-- Live device sessions: ones deleted upstream (`deleted_at` set by the sync) are left out.
SELECT
    id AS session_id,
    organization AS organization_id,
    "user" AS user_id,
    device__id AS device_id,
    device__platform AS platform,
    device__type AS device_type,
    device__name AS device_name,
    device__os_version AS os_version,
    CAST(created_at AS TIMESTAMPTZ) AS created_at,
    CAST(released_at AS TIMESTAMPTZ) AS released_at,
    released_at IS NOT NULL AS is_released
FROM {{ latest(source('mobilenext', 'sessions'), 'id', 'released_at DESC NULLS LAST',
               where='deleted_at IS NULL') }} AS src
