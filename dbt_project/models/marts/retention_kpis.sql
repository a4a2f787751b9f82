with customers as (
    select customer_id, cohort_month from {{ ref('dim_customers') }}
),

bounds as (
    select min(cohort_month) as first_month, {{ month_of(reference_date(ref('fct_orders'))) }} as as_of_month
    from customers
),

months as (
    select cast({{ dbt.dateadd('month', 'spine.n', 'bounds.first_month') }} as date) as month
    from bounds
    cross join ({{ integer_spine(max_months()) }}) as spine
    where {{ dbt.dateadd('month', 'spine.n', 'bounds.first_month') }} <= bounds.as_of_month
),

customer_months as (
    select customer_id, order_month, orders, revenue from {{ ref('int_customer_months') }}
),

activity as (
    select
        order_month                                            as month,
        count(*)                                               as customers,
        sum(orders)                                            as orders,
        sum(revenue)                                           as revenue,
        sum(case when orders > 1 then 1 else 0 end)            as repeat_customers
    from customer_months
    group by order_month
),

carried_over as (
    -- Active in the previous month and again in this one: month-over-month retention.
    select this_month.order_month as month, count(*) as customers_retained_from_previous_month
    from customer_months as this_month
    inner join customer_months as previous_month
        on previous_month.customer_id = this_month.customer_id
        and previous_month.order_month = cast({{ dbt.dateadd('month', -1, 'this_month.order_month') }} as date)
    group by this_month.order_month
),

acquired as (
    select cohort_month as month, count(*) as new_customers from customers group by cohort_month
),

monthly as (
    select
        months.month,
        coalesce(activity.customers, 0)        as customers,
        coalesce(acquired.new_customers, 0)    as new_customers,
        coalesce(activity.orders, 0)           as orders,
        coalesce(activity.revenue, 0.0)        as revenue,
        coalesce(activity.repeat_customers, 0) as repeat_customers,
        coalesce(carried_over.customers_retained_from_previous_month, 0) as customers_retained_from_previous_month,
        -- everybody whose first order was before this month
        coalesce(sum(coalesce(acquired.new_customers, 0)) over (
            order by months.month rows between unbounded preceding and 1 preceding), 0) as customers_before
    from months
    left join activity on activity.month = months.month
    left join acquired on acquired.month = months.month
    left join carried_over on carried_over.month = months.month
)

select
    month,
    cast(customers as bigint)                                     as customers,
    cast(new_customers as bigint)                                 as new_customers,
    cast(customers - new_customers as bigint)                     as returning_customers,
    cast(orders as bigint)                                        as orders,
    revenue,
    case when orders > 0 then revenue / orders end                as aov,
    case when customers > 0 then orders * 1e0 / customers end     as purchase_frequency,
    case when customers > 0 then repeat_customers * 1e0 / customers end as repeat_customer_rate,
    case when customers > 0 then revenue / customers end          as customer_value,
    cast(customers_before as bigint)                              as customers_before,
    case when customers_before > 0 then (customers - new_customers) * 1e0 / customers_before end     as retention_rate,
    case when customers_before > 0 then 1 - (customers - new_customers) * 1e0 / customers_before end as churn_rate,
    cast(customers_retained_from_previous_month as bigint)        as customers_retained_from_previous_month,
    case when lag(customers) over (order by month) > 0
         then customers_retained_from_previous_month * 1e0 / lag(customers) over (order by month) end as month_over_month_retention_rate
from monthly
