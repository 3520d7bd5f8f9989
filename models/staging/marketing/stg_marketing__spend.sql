with

source as (

    select * from {{ source('marketing', 'spend') }}

),

renamed as (

    select
        ---------- keys
        cast(spend_date as date) as spend_date,
        lower(trim(channel)) as channel,

        ---------- text
        nullif(trim(campaign), '') as campaign,

        ---------- numerics
        {{ money('spend') }} as spend_amount,
        cast(clicks as bigint) as clicks

    from source

),

final as (

    select * from renamed

)

select * from final
