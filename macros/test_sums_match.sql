{#
    Generic data test: the total of `column_name` in this model equals the total
    of `field` in `to` (optionally filtered by `to_where`), to the cent. Catches
    joins that drop or fan out rows between layers.
#}
{% test sums_match(model, column_name, to, field, to_where=none) %}

with this_total as (

    select coalesce(sum({{ column_name }}), 0) as total
    from {{ model }}

),

other_total as (

    select coalesce(sum({{ field }}), 0) as total
    from {{ to }}
    {% if to_where %}where {{ to_where }}{% endif %}

),

final as (

    select
        this_total.total as this_total,
        other_total.total as other_total
    from this_total
    cross join other_total
    where abs(this_total.total - other_total.total) >= 0.01

)

select * from final

{% endtest %}
