with

source as (

    select * from {{ source('suppliers', 'suppliers') }}

),

renamed as (

    select
        ---------- ids
        cast(supplier_id as bigint) as supplier_id,

        ---------- text
        trim(supplier_name) as supplier_name,
        upper(nullif(trim(country), '')) as country_code,
        lower(nullif(trim(contact_email), '')) as contact_email,

        ---------- numerics
        cast(lead_time_days as integer) as lead_time_days

    from source

),

final as (

    select * from renamed

)

select * from final
