select
    cast(customer_id as {{ dbt.type_string() }})  as customer_id,
    cast(event_at as timestamp)   as event_at,
    cast(event_date as date)      as event_date,
    cast(event_type as {{ dbt.type_string() }})   as event_type,
    cast(cart_value as double)    as cart_value
from {{ source('raw', 'cart_events') }}
