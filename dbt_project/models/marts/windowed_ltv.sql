-- A cohort month is reported for a window only when every customer of it has been observed for the whole window.
with per_customer as (
    select * from {{ ref('int_customer_window_value') }}
),

cohorts as (
    {% for days in var('ltv_windows') %}
    select
        cohort_month,
        {{ days }}                                                  as window_days,
        count(*)                                                    as customers,
        sum(case when orders_{{ days }}d > 1 then 1 else 0 end)     as repeat_customers,
        sum(revenue_{{ days }}d)                                    as revenue,
        sum(margin_{{ days }}d)                                     as gross_margin,
        min(case when observed_{{ days }}d then 1 else 0 end)       as fully_observed
    from per_customer
    group by cohort_month
    {% if not loop.last %}union all{% endif %}
    {% endfor %}
)

select
    cohort_month,
    cast(window_days as integer)                 as window_days,
    cast(customers as bigint)                    as customers,
    revenue,
    gross_margin,
    revenue / customers                          as revenue_per_customer,
    gross_margin / customers                     as margin_per_customer,
    repeat_customers * 1e0 / customers           as repeat_rate_in_window
from cohorts
where fully_observed = 1
