-- Orders as known at the as-of date: valid statuses only, revenue net of refunds. raw.orders holds one row per
-- order_id (ingest keeps the latest version; fct_orders tests uniqueness), so no de-duplication here.
with point_in_time as (
    select *
    from {{ ref('stg_orders') }}
    where order_date <= {{ as_of_date() }}
      and status not in ('cancelled', 'test')
),

known as (
    select *,
        -- A refund booked after the as-of date is not known at that point in time.
        case when refunded_at is not null and cast(refunded_at as date) > {{ as_of_date() }} then 0.0
             else refunded_amount end as refund_known
    from point_in_time
)

select
    order_id,
    customer_id,
    ordered_at,
    order_date,
    net_revenue,
    discount_amount,
    discount_code,
    refund_known                                                    as refunded_amount,
    -- Without a cost, the default margin rate applies to what the shop kept (revenue after refunds).
    coalesce(known.cost, (net_revenue - refund_known) * (1 - {{ default_margin_rate() }})) as cost,
    known.cost is null                                     as margin_is_estimated,
    channel,
    product_category,
    (discount_amount > 0 or discount_code is not null)              as is_discounted
from known
