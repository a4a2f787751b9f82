-- Revenue, margin and each customer's running order number, the basis of every customer-level mart.
select
    order_id,
    customer_id,
    ordered_at,
    order_date,
    {{ month_of('order_date') }}                                   as order_month,
    net_revenue,
    discount_amount,
    discount_code,
    refunded_amount,
    net_revenue - refunded_amount                                  as revenue,
    cost,
    net_revenue - refunded_amount - cost                           as gross_margin,
    margin_is_estimated,
    channel,
    product_category,
    is_discounted
from {{ ref('int_orders') }}
