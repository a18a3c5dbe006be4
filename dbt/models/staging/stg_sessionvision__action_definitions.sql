-- Live action definitions; ones deleted upstream are left out, archived ones kept, flagged.
SELECT
    project_id || '/' || CAST(id AS VARCHAR) AS action_key,
    CAST(id AS BIGINT) AS action_id,
    project_id,
    name AS action_name,
    description,
    coalesce(archived, false) AS is_archived,
    steps,
    CAST(created_at AS TIMESTAMPTZ) AS created_at,
    CAST(updated_at AS TIMESTAMPTZ) AS updated_at
FROM {{ source('sessionvision', 'action_definitions') }}
WHERE deleted_at IS NULL
QUALIFY row_number() OVER (PARTITION BY project_id, id ORDER BY updated_at DESC) = 1
