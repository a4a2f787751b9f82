{#-
  Cohort × months-since-first-order grid, dense (months without activity are rows with zeros) so that the
  cumulative curves never skip a month. `dimension` adds a breakdown column (e.g. acquisition_channel).
-#}
{% macro cohort_retention(dimension=none) %}
{% set dim = (', ' ~ dimension) if dimension else '' %}
with customers as (
    select customer_id, cohort_month{{ dim }} from {{ ref('dim_customers') }}
),

as_of as (
    select {{ month_of(reference_date(ref('fct_orders'))) }} as as_of_month
),

cohorts as (
    select cohort_month{{ dim }}, count(*) as cohort_size
    from customers
    group by cohort_month{{ dim }}
),

grid as (
    select cohorts.*, spine.n as months_since_first_order
    from cohorts
    cross join ({{ integer_spine(max_months()) }}) as spine
    cross join as_of
    where {{ dbt.dateadd('month', 'spine.n', 'cohorts.cohort_month') }} <= as_of.as_of_month
),

activity as (
    -- one row per customer and active month, so active customers are a count, not a distinct count
    select
        cohort_month{{ dim }},
        {{ months_between('cohort_month', 'order_month') }} as months_since_first_order,
        count(*)          as active_customers,
        sum(orders)       as orders,
        sum(revenue)      as revenue,
        sum(gross_margin) as gross_margin
    from {{ ref('int_customer_months') }}
    group by all
)

select
    grid.cohort_month,
    {% if dimension %}grid.{{ dimension }},{% endif %}
    cast(grid.months_since_first_order as bigint)                              as months_since_first_order,
    cast({{ dbt.dateadd('month', 'grid.months_since_first_order', 'grid.cohort_month') }} as date) as calendar_month,
    cast(grid.cohort_size as bigint)                                           as cohort_size,
    cast(coalesce(activity.active_customers, 0) as bigint)                     as active_customers,
    coalesce(activity.active_customers, 0) * 1e0 / grid.cohort_size            as retention_rate,
    cast(coalesce(activity.orders, 0) as bigint)                               as orders,
    coalesce(activity.revenue, 0.0)                                            as revenue,
    coalesce(activity.gross_margin, 0.0)                                       as gross_margin,
    sum(coalesce(activity.revenue, 0.0)) over (
        partition by grid.cohort_month{{ (', grid.' ~ dimension) if dimension else '' }}
        order by grid.months_since_first_order rows between unbounded preceding and current row
    ) / grid.cohort_size                                                       as cumulative_revenue_per_customer,
    sum(coalesce(activity.gross_margin, 0.0)) over (
        partition by grid.cohort_month{{ (', grid.' ~ dimension) if dimension else '' }}
        order by grid.months_since_first_order rows between unbounded preceding and current row
    ) / grid.cohort_size                                                       as cumulative_margin_per_customer,
    {{ dbt.dateadd('month', 'grid.months_since_first_order + 1', 'grid.cohort_month') }} <= {{ dbt.dateadd('day', 1, reference_date(ref('fct_orders'))) }} as is_complete_month
from grid
cross join as_of
left join activity
    on activity.cohort_month = grid.cohort_month
    and activity.months_since_first_order = grid.months_since_first_order
    {% if dimension %}and activity.{{ dimension }} = grid.{{ dimension }}{% endif %}
{% endmacro %}
