with

source as (

    select * from {{ source('shop', 'products') }}

),

renamed as (

    select
        ---------- ids
        cast(id as bigint) as product_id,
        cast(supplier_id as bigint) as supplier_id,

        ---------- text
        trim(sku) as sku,
        trim(name) as product_name,
        lower(nullif(trim(category), '')) as category,

        ---------- numerics
        {{ money('price') }} as price,

        ---------- booleans
        is_active,

        ---------- timestamps
        cast(updated_at as {{ dbt.type_timestamp() }}) as updated_at

    from source

),

final as (

    select * from renamed

)

select * from final
