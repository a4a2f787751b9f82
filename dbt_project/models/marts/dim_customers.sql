-- The customer totals (incremental, as-of independent) plus what depends on the as-of date.
select
    customer_id,
    first_order_date,
    last_order_date,
    {{ month_of('first_order_date') }}                              as cohort_month,
    acquisition_channel,
    first_product_category,
    first_order_discounted,
    first_order_discount_code,
    orders_count,
    purchase_days,
    discounted_orders,
    net_revenue,
    gross_margin,
    net_revenue / orders_count                                      as aov,
    {{ days_to_as_of('first_order_date') }}                         as tenure_days,
    {{ days_to_as_of('last_order_date') }}                          as days_since_last_order
from {{ ref('int_customer_totals') }}
