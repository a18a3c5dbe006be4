{# A model's grain: no two rows share these columns. #}
{% test unique_columns(model, columns) %}
SELECT {{ columns | join(', ') }}, count(*) AS n
FROM {{ model }}
GROUP BY ALL
HAVING count(*) > 1
{% endtest %}
