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
    cast({{ days_between('first_order_date', reference_date(ref('fct_orders'))) }} as bigint) as tenure_days,
    cast({{ days_between('last_order_date', reference_date(ref('fct_orders'))) }} as bigint)  as days_since_last_order
from {{ ref('int_customer_totals') }}
