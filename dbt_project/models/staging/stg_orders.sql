-- Renaming and casting only; business rules live in intermediate.
select
    cast(order_id as {{ dbt.type_string() }})          as order_id,
    cast(customer_id as {{ dbt.type_string() }})       as customer_id,
    cast(ordered_at as timestamp)      as ordered_at,
    cast(order_date as date)           as order_date,
    cast(net_revenue as double)        as net_revenue,
    cast(discount_amount as double)    as discount_amount,
    discount_code,
    cast(refunded_amount as double)    as refunded_amount,
    cast(refunded_at as timestamp)     as refunded_at,
    cast(cost as double)               as cost,
    coalesce(channel, 'unknown')       as channel,
    coalesce(status, 'completed')      as status,
    coalesce(product_category, 'unknown') as product_category,
    email_hmac,
    source_file,
    source_line
from {{ source('raw', 'orders') }}
