-- Grain of int_customer_months: one row per customer and month. Only the months this run rebuilt can break it
-- (earlier ones were checked when they were built), so a daily run checks one or two months, not 5.7 M rows;
-- a full-history run checks every month.
-- It reads the run context (a source) as well as the model: `ref` names the model it checks, so Dagster shows it as
-- an asset check of intermediate/int_customer_months (not as an observation).
{{ config(meta={'dagster': {'ref': {'name': 'int_customer_months'}}}) }}
select customer_id, order_month, count(*) as rows_per_customer_month
from {{ ref('int_customer_months') }}
where order_month >= {{ rebuild_from_month() }}
group by customer_id, order_month
having count(*) > 1
