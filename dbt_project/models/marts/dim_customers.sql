with orders as (
    select * from {{ ref('fct_orders') }}
),

first_orders as (
    select customer_id, order_date, channel, product_category, is_discounted, discount_code
    from orders
    where is_first_order
),

totals as (
    select
        customer_id,
        min(order_date)    as first_order_date,
        max(order_date)    as last_order_date,
        count(*)           as orders_count,
        count(distinct order_date) as purchase_days,
        sum(revenue)       as net_revenue,
        sum(gross_margin)  as gross_margin,
        sum(case when is_discounted then 1 else 0 end) as discounted_orders
    from orders
    group by customer_id
)

select
    totals.customer_id,
    totals.first_order_date,
    totals.last_order_date,
    {{ month_of('totals.first_order_date') }}                       as cohort_month,
    first_orders.channel                                            as acquisition_channel,
    first_orders.product_category                                   as first_product_category,
    first_orders.is_discounted                                      as first_order_discounted,
    first_orders.discount_code                                      as first_order_discount_code,
    cast(totals.orders_count as bigint)                             as orders_count,
    cast(totals.purchase_days as bigint)                            as purchase_days,
    cast(totals.discounted_orders as bigint)                        as discounted_orders,
    totals.net_revenue,
    totals.gross_margin,
    totals.net_revenue / totals.orders_count                        as aov,
    cast({{ days_between('totals.first_order_date', reference_date(ref('fct_orders'))) }} as bigint) as tenure_days,
    cast({{ days_between('totals.last_order_date', reference_date(ref('fct_orders'))) }} as bigint)  as days_since_last_order
from totals
inner join first_orders on first_orders.customer_id = totals.customer_id
