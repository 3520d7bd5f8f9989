with

source as (

    select * from {{ source('shop', 'payments') }}

),

renamed as (

    select
        ---------- ids
        cast(id as bigint) as payment_id,
        cast(order_id as bigint) as order_id,

        ---------- text
        lower(trim(method)) as payment_method,
        lower(trim(status)) as payment_status,

        ---------- numerics
        {{ money('amount') }} as amount,

        ---------- booleans
        lower(trim(status)) = 'success' as is_successful,

        ---------- timestamps
        cast(paid_at as {{ dbt.type_timestamp() }}) as paid_at,
        cast(updated_at as {{ dbt.type_timestamp() }}) as updated_at

    from source

),

final as (

    select * from renamed

)

select * from final
