{{ config(materialized="table") }}
-- Value each customer produced within N days of the first order (N in var ltv_windows), and whether that
-- window is fully observed at the as-of date: one row per customer, one group of columns per window (a long
-- customer × window table was 5× the rows for the same sums). One pass over the orders: each order is tagged
-- with its day since the customer's first order, and every window sums the orders below its bound.
with customers as (
    select customer_id, cohort_month, first_order_date from {{ ref('dim_customers') }}
),

aged_orders as (
    select
        orders.customer_id,
        {{ days_between('customers.first_order_date', 'orders.order_date') }} as day_since_first,
        orders.revenue,
        orders.gross_margin
    from {{ ref('fct_orders') }} as orders
    inner join customers on customers.customer_id = orders.customer_id
),

per_customer as (
    select
        customer_id
        {% for days in var('ltv_windows') %},
        sum(case when day_since_first < {{ days }} then 1 else 0 end)            as orders_{{ days }}d,
        sum(case when day_since_first < {{ days }} then revenue else 0 end)      as revenue_{{ days }}d,
        sum(case when day_since_first < {{ days }} then gross_margin else 0 end) as margin_{{ days }}d
        {% endfor %}
    from aged_orders
    group by customer_id
)

select
    customers.customer_id,
    customers.cohort_month,
    customers.first_order_date
    {% for days in var('ltv_windows') %},
    cast(per_customer.orders_{{ days }}d as bigint) as orders_{{ days }}d,
    per_customer.revenue_{{ days }}d                as revenue_{{ days }}d,
    per_customer.margin_{{ days }}d                 as margin_{{ days }}d,
    -- the window's last day (first_order_date + N − 1) is on or before the as-of date
    {{ dbt.dateadd('day', days - 1, 'customers.first_order_date') }} <= {{ reference_date(ref('fct_orders')) }} as observed_{{ days }}d
    {% endfor %}
from customers
inner join per_customer on per_customer.customer_id = customers.customer_id
