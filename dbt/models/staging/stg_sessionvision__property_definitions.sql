SELECT
    project_id || '/' || key AS property_definition_key,
    project_id,
    key AS property_name,
    type AS property_type,
    example_values
FROM {{ source('sessionvision', 'property_definitions') }}
QUALIFY row_number() OVER (PARTITION BY project_id, key ORDER BY key) = 1
