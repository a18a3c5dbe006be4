{# SQL that DuckDB and Postgres spell differently, so one set of models runs on both
   (`sessionsync transform` on the DuckDB file, a Delta folder or bucket, or Postgres).
   `latest` is spelled the same on both; the others dispatch on the adapter, `default__`
   being DuckDB's spelling. Elsewhere the models keep to what both accept: `GROUP BY 1, 2`
   (not `GROUP BY ALL`), `INTERVAL '7 days'`, `CASE` for lookups, `date - date` for days. #}

{# One row per `key` of `relation`: the first by `order_by` (QUALIFY is DuckDB's only). #}
{% macro latest(relation, key, order_by, where=none) -%}
    (SELECT * FROM (
        SELECT *, row_number() OVER (PARTITION BY {{ key }} ORDER BY {{ order_by }}) AS _rank
        FROM {{ relation }}
        {%- if where %} WHERE {{ where }}{% endif %}
    ) AS ranked WHERE _rank = 1)
{%- endmacro %}

{# Seconds in an interval, as a double. #}
{% macro seconds(interval) -%}
    {{ return(adapter.dispatch('seconds')(interval)) }}
{%- endmacro %}
{% macro default__seconds(interval) -%} epoch({{ interval }}) {%- endmacro %}
{% macro postgres__seconds(interval) -%}
    CAST(extract(epoch FROM {{ interval }}) AS DOUBLE PRECISION)
{%- endmacro %}

{# `value` rounded to `digits` decimals, as a double (Postgres rounds only numerics). #}
{% macro round_to(value, digits) -%}
    {{ return(adapter.dispatch('round_to')(value, digits)) }}
{%- endmacro %}
{% macro default__round_to(value, digits) -%} round({{ value }}, {{ digits }}) {%- endmacro %}
{% macro postgres__round_to(value, digits) -%}
    CAST(round(CAST({{ value }} AS NUMERIC), {{ digits }}) AS DOUBLE PRECISION)
{%- endmacro %}

{# `part / whole` rounded to `digits`, NULL when `whole` is 0 (never integer division). #}
{% macro ratio(part, whole, digits=4) -%}
    {{ round_to("CAST(" ~ part ~ " AS DOUBLE PRECISION) / nullif(" ~ whole ~ ", 0)", digits) }}
{%- endmacro %}

{# The continuous `fraction` quantile of `value` (an aggregate). #}
{% macro quantile(value, fraction) -%}
    {{ return(adapter.dispatch('quantile')(value, fraction)) }}
{%- endmacro %}
{% macro default__quantile(value, fraction) -%}
    quantile_cont({{ value }}, {{ fraction }})
{%- endmacro %}
{% macro postgres__quantile(value, fraction) -%}
    percentile_cont({{ fraction }}) WITHIN GROUP (ORDER BY {{ value }})
{%- endmacro %}

{# One row per UTC midnight from the day of `start` to the day of `end` (a set-returning
   expression for a LATERAL select list). #}
{% macro each_day(start, end) -%}
    {{ return(adapter.dispatch('each_day')(start, end)) }}
{%- endmacro %}
{% macro default__each_day(start, end) -%}
    unnest(generate_series(date_trunc('day', {{ start }}), date_trunc('day', {{ end }}),
                           INTERVAL '1 day'))
{%- endmacro %}
{% macro postgres__each_day(start, end) -%}
    generate_series(date_trunc('day', {{ start }}), date_trunc('day', {{ end }}),
                    INTERVAL '1 day')
{%- endmacro %}
