-- RFM quintiles (5 = best; ties broken by customer_id so re-runs agree), one named segment and the articles' flags.
-- From the customer totals, not dim_customers: the two build side by side (the same columns as there).
with customers as (
    select
        customer_id,
        {{ month_of('first_order_date') }}          as cohort_month,
        acquisition_channel,
        orders_count,
        discounted_orders,
        net_revenue,
        net_revenue / orders_count                  as aov,
        {{ days_to_as_of('first_order_date') }}     as tenure_days,
        {{ days_to_as_of('last_order_date') }}      as days_since_last_order,
        last_ordered_at
    from {{ ref('int_customer_totals') }}
),

thresholds as (
    select
        percentile_cont({{ var('big_spender_quantile') }}) within group (order by net_revenue) as big_spender_revenue,
        percentile_cont({{ var('high_aov_quantile') }}) within group (order by aov)          as high_aov
    from customers
),

cart_activity as (
    select customer_id, max(event_at) as last_cart_event_at
    from {{ ref('stg_cart_events') }}
    where event_date <= {{ reference_date(ref('fct_orders')) }}
      and event_date > {{ dbt.dateadd('day', -var('cart_abandon_days'), reference_date(ref('fct_orders'))) }}
    group by customer_id
),

cart_data as (
    select count(*) > 0 as supplied from {{ ref('stg_cart_events') }}
),

scores as (
    -- ranked on a narrow projection and joined back: each window sorts three columns, not the whole row (2× faster)
    select
        customer_id,
        ntile(5) over (order by days_since_last_order desc, customer_id) as recency_score,
        ntile(5) over (order by orders_count, customer_id)               as frequency_score,
        ntile(5) over (order by net_revenue, customer_id)                as monetary_score
    from customers
),

scored as (
    select customers.*, scores.recency_score, scores.frequency_score, scores.monetary_score
    from customers
    inner join scores on scores.customer_id = customers.customer_id
)

select
    scored.customer_id,
    scored.cohort_month,
    scored.acquisition_channel,
    scored.orders_count,
    scored.net_revenue,
    scored.aov,
    scored.days_since_last_order,
    cast(scored.recency_score as integer)   as recency_score,
    cast(scored.frequency_score as integer) as frequency_score,
    cast(scored.monetary_score as integer)  as monetary_score,
    cast(scored.recency_score as {{ dbt.type_string() }}) || cast(scored.frequency_score as {{ dbt.type_string() }}) || cast(scored.monetary_score as {{ dbt.type_string() }}) as rfm_code,
    case
        when scored.recency_score >= 4 and scored.frequency_score >= 4 and scored.monetary_score >= 4 then 'champions'
        when scored.recency_score >= 3 and scored.frequency_score >= 4 then 'loyal'
        when scored.orders_count = 1 and scored.tenure_days <= {{ var('rfm_recent_days') }} then 'new'
        when scored.recency_score >= 4 and scored.orders_count > 1 then 'potential_loyalists'
        when scored.recency_score <= 2 and scored.frequency_score >= 3 then 'at_risk'
        when scored.recency_score = 1 then 'lost'
        when scored.recency_score = 2 then 'hibernating'
        else 'needs_attention'
    end                                                                        as segment,
    scored.orders_count = 1                                                    as is_first_time_buyer,
    scored.orders_count > 1                                                    as is_repeat_buyer,
    scored.net_revenue >= thresholds.big_spender_revenue                       as is_big_spender,
    scored.aov >= thresholds.high_aov                                          as is_high_aov,
    scored.discounted_orders * 1e0 / scored.orders_count >= {{ var('discount_shopper_share') }} as is_discount_shopper,
    scored.discounted_orders = 0                                               as is_full_price_buyer,
    scored.orders_count >= {{ var('vip_min_orders') }}
        and scored.days_since_last_order <= {{ var('rfm_recent_days') }}       as is_vip,
    scored.days_since_last_order >= {{ var('at_risk_days') }}                  as is_at_risk,
    -- null (unknown) when no cart events were supplied at all
    case when not cart_data.supplied then null
         else coalesce(cart_activity.last_cart_event_at > scored.last_ordered_at, false) end as is_cart_abandoner
from scored
cross join thresholds
cross join cart_data
left join cart_activity on cart_activity.customer_id = scored.customer_id
