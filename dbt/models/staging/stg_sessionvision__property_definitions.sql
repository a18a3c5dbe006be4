SELECT
    project_id || '/' || key AS property_definition_key,
    project_id,
    key AS property_name,
    type AS property_type,
    example_values
FROM {{ latest(source('sessionvision', 'property_definitions'), 'project_id, key', 'key') }} AS src
