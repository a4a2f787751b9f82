-- Which first purchases bring the best customers: value within 90 and 365 days by first-order attribute.
-- Windowed values use only customers whose window is fully observed (their counts are reported alongside).
with customers as (
    select
        customer_id,
        orders_count,
        coalesce(first_product_category, 'unknown')                               as first_product_category,
        case when first_order_discounted then 'discounted' else 'full price' end  as first_order_discount,
        coalesce(first_order_discount_code, 'none')                               as first_order_discount_code,
        coalesce(acquisition_channel, 'unknown')                                  as acquisition_channel
    from {{ ref('dim_customers') }}
),

windows as (
    select
        customer_id,
        case when observed_90d then 1 else 0 end             as observed_90d,
        case when observed_90d then revenue_90d else 0 end   as revenue_90d,
        case when observed_90d then margin_90d else 0 end    as margin_90d,
        case when observed_365d then 1 else 0 end            as observed_365d,
        case when observed_365d then revenue_365d else 0 end as revenue_365d,
        case when observed_365d then margin_365d else 0 end  as margin_365d
    from {{ ref('int_customer_window_value') }}
),

enriched as (
    select customers.*, windows.observed_90d, windows.revenue_90d, windows.margin_90d,
           windows.observed_365d, windows.revenue_365d, windows.margin_365d
    from customers
    inner join windows on windows.customer_id = customers.customer_id
),

long as (
    {% set drivers = ['first_product_category', 'first_order_discount', 'first_order_discount_code', 'acquisition_channel'] %}
    {% for driver in drivers %}
    select '{{ driver }}' as driver, {{ driver }} as driver_value, enriched.*
    from enriched
    {% if not loop.last %}union all{% endif %}
    {% endfor %}
)

select
    driver,
    driver_value,
    cast(count(*) as bigint)                                                          as customers,
    sum(case when orders_count > 1 then 1 else 0 end) * 1e0 / count(*)                as repeat_rate,
    cast(sum(observed_90d) as bigint)                                                 as customers_90d_observed,
    case when sum(observed_90d) > 0 then sum(revenue_90d) / sum(observed_90d) end     as value_90d_per_customer,
    case when sum(observed_90d) > 0 then sum(margin_90d) / sum(observed_90d) end      as margin_90d_per_customer,
    cast(sum(observed_365d) as bigint)                                                as customers_365d_observed,
    case when sum(observed_365d) > 0 then sum(revenue_365d) / sum(observed_365d) end  as value_365d_per_customer,
    case when sum(observed_365d) > 0 then sum(margin_365d) / sum(observed_365d) end   as margin_365d_per_customer
from long
group by driver, driver_value
