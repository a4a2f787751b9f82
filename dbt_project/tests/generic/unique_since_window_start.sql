{#-
  `unique` for an incremental model: only the rows this run rebuilt (date_column on or after the window start)
  can bring a duplicate — older rows were checked when they were built and are never rewritten — so their
  values are checked against the whole table. A full-history run checks every row. At 10 M orders: 0.2 s
  instead of 1.1 s, on the critical path of every daily build.
-#}
{% test unique_since_window_start(model, column_name, date_column) %}
select {{ column_name }}, count(*) as n
from {{ model }}
where {{ column_name }} in (
    select {{ column_name }} from {{ model }} where {{ date_column }} >= {{ window_start() }}
)
group by {{ column_name }}
having count(*) > 1
{% endtest %}
