{# On an incremental run, the first `column` value to recompute: the newest one already built
   less `lookback`. Anchored to what the model holds, not to the clock, so a transform that runs
   after days of syncs still recomputes every day that new or late data can touch. #}
{% macro lookback_start(column, lookback) -%}
    (SELECT coalesce(max({{ column }}) - {{ lookback }}, DATE '1970-01-01') FROM {{ this }})
{%- endmacro %}
