{#
    Set-returning expression: one date per day from start_date to end_date
    (both inclusive). Use it in a select list over a one-row relation, e.g.
        select {{ days_between('first_day', 'last_day') }} as date_day from bounds
#}
{% macro days_between(start_date, end_date) -%}
    {{ return(adapter.dispatch('days_between')(start_date, end_date)) }}
{%- endmacro %}

{% macro default__days_between(start_date, end_date) -%}
    cast(generate_series(
        cast({{ start_date }} as timestamp), cast({{ end_date }} as timestamp), interval '1 day'
    ) as date)
{%- endmacro %}

{% macro duckdb__days_between(start_date, end_date) -%}
    cast(unnest(generate_series(
        cast({{ start_date }} as timestamp), cast({{ end_date }} as timestamp), interval '1 day'
    )) as date)
{%- endmacro %}
