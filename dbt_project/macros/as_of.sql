{#-
  The run's context. The pipeline writes it to raw.run_context before each build (data, not --vars, so that
  dbt's partial parsing survives from run to run); a dbt var of the same name overrides it for hand runs.
-#}
{% macro run_context(column) -%}
    (select {{ column }} from {{ source('raw', 'run_context') }})
{%- endmacro %}

{#- The run's point in time as a date. Without one, everything loaded is used. -#}
{% macro as_of_date() -%}
    {%- if var('as_of') -%}cast('{{ var("as_of") }}' as date)
    {%- else -%}coalesce({{ run_context('as_of') }}, cast('9999-12-31' as date)){%- endif -%}
{%- endmacro %}

{#- The as-of date for age computations: the run's as-of, else the latest order date. -#}
{% macro reference_date(orders_relation) -%}
    {%- if var('as_of') -%}cast('{{ var("as_of") }}' as date)
    {%- else -%}coalesce({{ run_context('as_of') }}, (select max(order_date) from {{ orders_relation }})){%- endif -%}
{%- endmacro %}

{#- First order date an incremental build replaces. -#}
{% macro window_start() -%}
    {%- if var('window_start') -%}cast('{{ var("window_start") }}' as date)
    {%- else -%}coalesce({{ run_context('window_start') }}, cast('0001-01-01' as date)){%- endif -%}
{%- endmacro %}

{% macro default_margin_rate() -%}
    {%- if var('default_margin_rate') is not none -%}{{ var('default_margin_rate') }}
    {%- else -%}{{ run_context('default_margin_rate') }}{%- endif -%}
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

{#- First month the month-grain incremental models rebuild: the window's month, or the as-of month if earlier. -#}
{% macro rebuild_from_month() -%}
    least({{ month_of(window_start()) }}, {{ month_of(as_of_date()) }})
{%- endmacro %}

{#- Whole days from a date column to the run's as-of date (a customer's tenure, days since the last order). -#}
{% macro days_to_as_of(date_column) -%}
    cast({{ days_between(date_column, reference_date(ref('fct_orders'))) }} as bigint)
{%- endmacro %}

{#- The dates an incremental run deletes and rebuilds: its window, and anything after its as-of date. fct_orders
    deletes its orders by this test; int_customer_totals re-aggregates the customers whose last order passes it. -#}
{% macro rebuilt_date(date_column) -%}
    ({{ date_column }} >= {{ window_start() }} or {{ date_column }} > {{ as_of_date() }})
{%- endmacro %}
