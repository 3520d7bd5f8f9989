{#
    Money columns share one type on every warehouse: numeric(12,2) for a row's
    amount, numeric(18,2) for totals summed over many rows.
#}
{% macro money(expression) -%}
    cast({{ expression }} as numeric(12, 2))
{%- endmacro %}

{% macro money_total(expression) -%}
    cast({{ expression }} as numeric(18, 2))
{%- endmacro %}
