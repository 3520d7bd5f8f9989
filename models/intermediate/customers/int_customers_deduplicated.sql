with

customers as (

    select * from {{ ref('stg_shop__customers') }}

),

signups as (

    select
        *,
        -- The earliest sign-up id of an address is the person's canonical id.
        -- A sign-up without an address cannot be matched and stays on its own.
        case
            when email is null then customer_id
            else min(customer_id) over (partition by email)
        end as canonical_customer_id

    from customers

),

people as (

    select
        canonical_customer_id as customer_id,
        email,
        count(*) as number_of_signups,
        min(created_at) as first_signed_up_at,
        max(updated_at) as updated_at,
        -- Fallbacks for attributes the canonical sign-up lacks.
        max(first_name) as any_first_name,
        max(last_name) as any_last_name,
        max(country_code) as any_country_code

    from signups
    group by canonical_customer_id, email

),

canonical_signups as (

    select * from signups
    where customer_id = canonical_customer_id

),

final as (

    select
        people.customer_id,
        people.email,
        coalesce(canonical_signups.first_name, people.any_first_name) as first_name,
        coalesce(canonical_signups.last_name, people.any_last_name) as last_name,
        coalesce(canonical_signups.country_code, people.any_country_code) as country_code,
        people.number_of_signups,
        people.first_signed_up_at,
        people.updated_at

    from people
    inner join canonical_signups
        on people.customer_id = canonical_signups.customer_id

)

select * from final
