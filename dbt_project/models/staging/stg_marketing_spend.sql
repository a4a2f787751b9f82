select
    cast(date as date)        as spend_date,
    cast(channel as {{ dbt.type_string() }})  as channel,
    cast(spend as double)     as spend
from {{ source('raw', 'marketing_spend') }}
