{#
    A model's custom schema (set per folder in dbt_project.yml) becomes exactly
    <prefix><custom schema>, where the prefix is HEADWATER_SCHEMA_PREFIX (empty
    by default): `staging`, `marts` normally, `t1a2b_staging` in a test run.
    This matches the raw schemas that dlt loads, `<prefix>raw_<source>`.
    Models without a custom schema go to the target's schema.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ env_var('HEADWATER_SCHEMA_PREFIX', '') ~ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
