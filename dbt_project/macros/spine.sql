{#- Integers 0..upper_bound as a one-column relation (n). Engine-specific, so adapter-dispatched. -#}
{% macro integer_spine(upper_bound) -%}
    {{ return(adapter.dispatch('integer_spine')(upper_bound)) }}
{%- endmacro %}

{% macro default__integer_spine(upper_bound) -%}
    with recursive spine (n) as (select 0 union all select n + 1 from spine where n < {{ upper_bound }})
    select n from spine
{%- endmacro %}

{% macro duckdb__integer_spine(upper_bound) -%}
    select cast(range as bigint) as n from range(0, {{ upper_bound }} + 1)
{%- endmacro %}

{#- Spark 3.5 cannot parse WITH RECURSIVE; its range() table function names the column id. -#}
{% macro spark__integer_spine(upper_bound) -%}
    select id as n from range(0, {{ upper_bound }} + 1)
{%- endmacro %}

{#- Longest history the month grids cover (50 years). -#}
{% macro max_months() %}600{% endmacro %}
