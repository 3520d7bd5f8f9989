with

customers as (

    select * from {{ ref('stg_shop__customers') }}

),

people as (

    select * from {{ ref('int_customers_deduplicated') }}

),

mapped as (

    select
        customers.customer_id,
        coalesce(people.customer_id, customers.customer_id) as canonical_customer_id

    from customers
    left join people
        on customers.email = people.email

),

final as (

    select
        customer_id,
        canonical_customer_id,
        customer_id = canonical_customer_id as is_canonical

    from mapped

)

select * from final
