{# A model's grain: no two rows share these columns. #}
{% test unique_columns(model, columns) %}
SELECT {{ columns | join(', ') }}, count(*) AS n
FROM {{ model }}
GROUP BY {% for c in columns %}{{ loop.index }}{{ ', ' if not loop.last }}{% endfor %}
HAVING count(*) > 1
{% endtest %}
