with

source as (

    select * from {{ source('shop', 'orders') }}

),

renamed as (

    select
        ---------- ids
        cast(id as bigint) as order_id,
        cast(customer_id as bigint) as customer_id,

        ---------- text
        lower(trim(status)) as order_status,
        upper(nullif(trim(shipping_country), '')) as shipping_country_code,

        ---------- timestamps
        cast(ordered_at as {{ dbt.type_timestamp() }}) as ordered_at,
        cast(updated_at as {{ dbt.type_timestamp() }}) as updated_at

    from source

),

final as (

    select * from renamed

)

select * from final
