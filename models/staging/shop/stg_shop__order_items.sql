with

source as (

    select * from {{ source('shop', 'order_items') }}

),

renamed as (

    select
        ---------- ids
        cast(id as bigint) as order_item_id,
        cast(order_id as bigint) as order_id,
        cast(product_id as bigint) as product_id,

        ---------- numerics
        cast(quantity as integer) as quantity,
        {{ money('unit_price') }} as unit_price,
        {{ money('quantity * unit_price') }} as line_amount,

        ---------- timestamps
        cast(updated_at as {{ dbt.type_timestamp() }}) as updated_at

    from source

),

final as (

    select * from renamed

)

select * from final
