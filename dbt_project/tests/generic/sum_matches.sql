{#- The column's total equals another model's total (to the cent): nothing lost or double counted. -#}
{% test sum_matches(model, column_name, compare_model, compare_column, tolerance=0.01) %}
with ours as (select coalesce(sum({{ column_name }}), 0) as total from {{ model }}),
     theirs as (select coalesce(sum({{ compare_column }}), 0) as total from {{ compare_model }})
select ours.total as model_total, theirs.total as compare_total
from ours, theirs
where abs(ours.total - theirs.total) > {{ tolerance }}
{% endtest %}
