with

source as (

    select * from {{ source('shop', 'customers') }}

),

renamed as (

    select
        ---------- ids
        cast(id as bigint) as customer_id,

        ---------- text
        nullif(trim(first_name), '') as first_name,
        nullif(trim(last_name), '') as last_name,
        lower(trim(email)) as email,
        upper(nullif(trim(country), '')) as country_code,

        ---------- timestamps
        cast(created_at as {{ dbt.type_timestamp() }}) as created_at,
        cast(updated_at as {{ dbt.type_timestamp() }}) as updated_at

    from source

),

final as (

    select * from renamed

)

select * from final
