{#- The run's point in time as a date literal. Without it (dbt run by hand) everything loaded is used. -#}
{% macro as_of_date() -%}
    {%- if var('as_of') -%}cast('{{ var("as_of") }}' as date){%- else -%}cast('9999-12-31' as date){%- endif -%}
{%- endmacro %}

{#- The as-of date for age computations: the explicit as-of, else the latest order date. -#}
{% macro reference_date(orders_relation) -%}
    {%- if var('as_of') -%}cast('{{ var("as_of") }}' as date){%- else -%}(select max(order_date) from {{ orders_relation }}){%- endif -%}
{%- endmacro %}

{#- First day of the month, through dbt's cross-database macro so other adapters work unchanged. -#}
{% macro month_of(column) -%}
    cast({{ dbt.date_trunc('month', column) }} as date)
{%- endmacro %}

{#- Whole calendar months from one month-start to another. -#}
{% macro months_between(start_month, end_month) -%}
    {{ dbt.datediff(start_month, end_month, 'month') }}
{%- endmacro %}

{% macro days_between(start_date, end_date) -%}
    {{ dbt.datediff(start_date, end_date, 'day') }}
{%- endmacro %}
