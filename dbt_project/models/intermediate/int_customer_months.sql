{#-
  One row per customer and month with orders: the grain of the cohort and retention marts (5.7 M rows for 10 M
  orders), with the customer's cohort and acquisition channel.

  Incremental by month: a run deletes and rebuilds the months from the one its window starts in (or the as-of
  month, when that is earlier). Earlier months cannot change — fct_orders keeps every order before the window —
  and neither can their customers' cohorts: a customer whose first order moves has it inside the window, so all
  of their months are rebuilt. A full-history run (`clv run`) passes --full-refresh. On Spark the table is partitioned
  by month and the rebuilt months' partitions are dropped instead (macros/incremental.sql).
-#}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    partition_by=month_partition('order_month'),
    pre_hook="{% if is_incremental() %}{{ clear_rebuilt_rows('order_month >= ' ~ rebuild_from_month(), 'order_month') }}{% endif %}"
) }}

select
    orders.customer_id,
    orders.order_month,
    {{ month_of('customers.first_order_date') }} as cohort_month,
    customers.acquisition_channel,
    cast(count(*) as bigint)                      as orders,
    sum(orders.revenue)                           as revenue,
    sum(orders.gross_margin)                      as gross_margin
from {{ ref('fct_orders') }} as orders
inner join {{ ref('int_customer_totals') }} as customers on customers.customer_id = orders.customer_id
{% if is_incremental() %}
where orders.order_date >= {{ rebuild_from_month() }}
{% endif %}
group by all
