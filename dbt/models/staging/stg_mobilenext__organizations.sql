SELECT
    id AS organization_id,
    name AS organization_name,
    type AS organization_type,
    role,
    CAST(created_at AS TIMESTAMPTZ) AS created_at
FROM {{ source('mobilenext', 'organizations') }}
QUALIFY row_number() OVER (PARTITION BY id ORDER BY created_at DESC) = 1
