-- Value each customer produced within N days of the first order (N in var ltv_windows), and whether that
-- window is fully observed at the as-of date.
with customers as (
    select customer_id, cohort_month, first_order_date from {{ ref('dim_customers') }}
),

windows as (
    {% for days in var('ltv_windows') %}
    select {{ days }} as window_days{% if not loop.last %} union all{% endif %}
    {% endfor %}
),

in_window as (
    select
        customers.customer_id,
        windows.window_days,
        count(*)                  as orders,
        sum(orders.revenue)       as revenue,
        sum(orders.gross_margin)  as gross_margin
    from customers
    cross join windows
    inner join {{ ref('fct_orders') }} as orders
        on orders.customer_id = customers.customer_id
        and orders.order_date < {{ dbt.dateadd('day', 'windows.window_days', 'customers.first_order_date') }}
    group by customers.customer_id, windows.window_days
)

select
    customers.customer_id,
    customers.cohort_month,
    customers.first_order_date,
    windows.window_days,
    coalesce(in_window.orders, 0)         as orders,
    coalesce(in_window.revenue, 0.0)      as revenue,
    coalesce(in_window.gross_margin, 0.0) as gross_margin,
    -- the window's last day (first_order_date + N − 1) is on or before the as-of date
    {{ dbt.dateadd('day', 'windows.window_days - 1', 'customers.first_order_date') }} <= {{ reference_date(ref('fct_orders')) }} as is_observed
from customers
cross join windows
left join in_window
    on in_window.customer_id = customers.customer_id and in_window.window_days = windows.window_days
