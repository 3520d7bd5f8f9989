{#
    Generic data test: no two rows share the same values in all of `combination_of_columns`.
    (A small stand-in for dbt_utils.unique_combination_of_columns; this project uses no packages.)
#}
{% test unique_combination_of_columns(model, combination_of_columns) %}

with grouped as (

    select
        {{ combination_of_columns | join(', ') }},
        count(*) as number_of_rows
    from {{ model }}
    group by {{ combination_of_columns | join(', ') }}

),

final as (

    select * from grouped
    where number_of_rows > 1

)

select * from final

{% endtest %}
