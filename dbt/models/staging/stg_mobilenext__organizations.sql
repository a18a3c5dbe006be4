SELECT
    id AS organization_id,
    name AS organization_name,
    type AS organization_type,
    role,
    CAST(created_at AS TIMESTAMPTZ) AS created_at
FROM {{ latest(source('mobilenext', 'organizations'), 'id', 'created_at DESC NULLS LAST') }} AS src
