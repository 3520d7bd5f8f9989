with

source as (

    select * from {{ source('web', 'events') }}

),

renamed as (

    select
        ---------- ids
        event_id,
        session_id,
        cast(customer_id as bigint) as customer_id,
        cast(properties__product_id as bigint) as product_id,

        ---------- text
        lower(trim(event_type)) as event_type,
        nullif(trim(properties__page), '') as page_path,
        lower(nullif(trim(properties__referrer), '')) as referrer,

        ---------- timestamps
        {{ parse_iso8601_timestamp('occurred_at') }} as occurred_at

    from source

),

final as (

    select * from renamed

)

select * from final
