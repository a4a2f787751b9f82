{#- A model configured with a database (the marts: `+database: marts_db` in dbt_project.yml) is built in that attached
    DuckDB file, the marts' own (profiles.yml). Other engines keep every model in the target's database: dbt-spark
    has no databases. -#}
{% macro generate_database_name(custom_database_name, node) -%}
    {%- if custom_database_name is none or target.type != 'duckdb' -%}{{ target.database }}{%- else -%}{{ custom_database_name | trim }}{%- endif -%}
{%- endmacro %}
