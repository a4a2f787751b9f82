-- Value each customer produced within N days of the first order (N in var ltv_windows), and whether that
-- window is fully observed at the as-of date: one row per customer, one group of columns per window. The sums
-- come from int_customer_totals (incremental); only the observed flags depend on the as-of date.
select
    customer_id,
    {{ month_of('first_order_date') }} as cohort_month,
    first_order_date
    {% for days in var('ltv_windows') %},
    orders_{{ days }}d,
    revenue_{{ days }}d,
    margin_{{ days }}d,
    -- the window's last day (first_order_date + N − 1) is on or before the as-of date
    {{ dbt.dateadd('day', days - 1, 'first_order_date') }} <= {{ reference_date(ref('fct_orders')) }} as observed_{{ days }}d
    {% endfor %}
from {{ ref('int_customer_totals') }}
