{#
    Parse an ISO-8601 string such as '2025-03-01T10:11:12.123456Z' (or with an
    offset like '+02:00') into a timestamp without time zone, in UTC.
    A string that is not a timestamp becomes null instead of failing the query.
#}
{% macro parse_iso8601_timestamp(column) -%}
    {{ return(adapter.dispatch('parse_iso8601_timestamp')(column)) }}
{%- endmacro %}

{% macro default__parse_iso8601_timestamp(column) -%}
    case
        when {{ column }} ~ '^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}'
            then cast(cast({{ column }} as timestamp with time zone) at time zone 'UTC' as timestamp)
    end
{%- endmacro %}

{% macro duckdb__parse_iso8601_timestamp(column) -%}
    cast(try_cast({{ column }} as timestamp with time zone) at time zone 'UTC' as timestamp)
{%- endmacro %}
