{#-
  How the incremental models (fct_orders, int_customer_months, int_customer_totals) replace the rows a run rebuilds.
  Engine-specific, so adapter-dispatched; the models' SQL is the same everywhere (docs/spark.md).

  DuckDB (default): a pre-hook deletes the rebuilt rows (by date for fct_orders, by month for int_customer_months, by
  customer for int_customer_totals) and the model appends what it re-selects, in one transaction.

  Spark (dbt-spark on Parquet tables): there is no DELETE. fct_orders and int_customer_months are partitioned by
  month; a run drops every month partition from the first rebuilt month on (explicitly, so a month or day whose
  orders were all cancelled or deleted, or that lies after a moved-back as-of date, is cleared too) and appends
  those months re-selected whole. int_customer_totals (one row per customer, no date to partition by) is rebuilt
  whole: one aggregation of fct_orders.
-#}

{#- First order date fct_orders re-selects in an incremental run: the window start where rows are deleted by date;
    the first day of the first rebuilt month where whole month partitions are replaced. -#}
{% macro rebuild_start() -%}
    {{ return(adapter.dispatch('rebuild_start')()) }}
{%- endmacro %}

{% macro default__rebuild_start() -%}
    {{ window_start() }}
{%- endmacro %}

{% macro spark__rebuild_start() -%}
    {{ rebuild_from_month() }}
{%- endmacro %}

{#- The pre-hook of an incremental model: remove the rows the run rebuilds. `condition` selects them (DuckDB);
    `month_partition` is the month column the table is partitioned by (Spark). -#}
{% macro clear_rebuilt_rows(condition, month_partition=none) -%}
    {{ return(adapter.dispatch('clear_rebuilt_rows')(condition, month_partition)) }}
{%- endmacro %}

{% macro default__clear_rebuilt_rows(condition, month_partition) -%}
    delete from {{ this }} where {{ condition }}
{%- endmacro %}

{#- Drops the month partitions from rebuild_from_month() on, read from the catalog (no scan); renders nothing, so
    dbt runs no statement for the hook itself. -#}
{% macro spark__clear_rebuilt_rows(condition, month_partition) -%}
    {%- if execute -%}
        {%- if month_partition is none -%}
            {{ exceptions.raise_compiler_error("clear_rebuilt_rows on Spark needs the month partition column of " ~ this) }}
        {%- endif -%}
        {%- set first_month = run_query("select cast(" ~ rebuild_from_month() ~ " as string)").columns[0].values()[0] -%}
        {%- set dropped = [] -%}
        {%- for row in run_query("show partitions " ~ this) -%}
            {%- set month = row[0].split('=', 1)[1] -%}
            {%- if month >= first_month -%}
                {%- do dropped.append("partition (" ~ month_partition ~ " = '" ~ month ~ "')") -%}
            {%- endif -%}
        {%- endfor -%}
        {%- if dropped -%}
            {%- do run_query("alter table " ~ this ~ " drop if exists " ~ dropped | join(', ')) -%}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{#- Month partitioning of the date-grain incremental models: none on DuckDB (one table, rows deleted by date). -#}
{% macro month_partition(column) -%}
    {{ return(adapter.dispatch('month_partition')(column)) }}
{%- endmacro %}

{% macro default__month_partition(column) -%}
    {{ return(none) }}
{%- endmacro %}

{% macro spark__month_partition(column) -%}
    {{ return([column]) }}
{%- endmacro %}

{#- Materialization of int_customer_totals: incremental by customer where rows can be deleted, a table elsewhere. -#}
{% macro customer_grain_materialization() -%}
    {{ return(adapter.dispatch('customer_grain_materialization')()) }}
{%- endmacro %}

{% macro default__customer_grain_materialization() -%}
    {{ return('incremental') }}
{%- endmacro %}

{% macro spark__customer_grain_materialization() -%}
    {{ return('table') }}
{%- endmacro %}

{#- Databricks (dbt-databricks dispatches databricks__, then spark__): Delta tables, which can DELETE but cannot
    DROP PARTITION, so the DuckDB pattern applies. Not exercised by `make test-spark` (no Delta here). -#}
{% macro databricks__rebuild_start() -%}{{ default__rebuild_start() }}{%- endmacro %}
{% macro databricks__clear_rebuilt_rows(condition, month_partition) -%}{{ default__clear_rebuilt_rows(condition, month_partition) }}{%- endmacro %}
{% macro databricks__month_partition(column) -%}{{ return(default__month_partition(column)) }}{%- endmacro %}
{% macro databricks__customer_grain_materialization() -%}{{ return(default__customer_grain_materialization()) }}{%- endmacro %}
