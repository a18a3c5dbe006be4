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
FROM {{ latest(source('sessionvision', 'action_definitions'), 'project_id, id',
               'updated_at DESC NULLS LAST', where='deleted_at IS NULL') }} AS src
