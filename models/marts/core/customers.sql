with

customers as (

    select * from {{ ref('int_customers_deduplicated') }}

),

orders as (

    select * from {{ ref('orders') }}

),

customer_orders as (

    select
        customer_id,
        min(ordered_at) as first_order_at,
        max(ordered_at) as last_order_at,
        count(*) as number_of_orders,
        sum(case when is_revenue then 1 else 0 end) as number_of_revenue_orders,
        sum(case when order_status = 'returned' then 1 else 0 end) as number_of_returned_orders,
        sum(case when order_status = 'cancelled' then 1 else 0 end) as number_of_cancelled_orders,
        sum(revenue_amount) as lifetime_value

    from orders
    group by customer_id

),

final as (

    select
        customers.customer_id,
        customers.email,
        customers.first_name,
        customers.last_name,
        customers.country_code,
        customers.number_of_signups,
        customers.first_signed_up_at,
        customer_orders.first_order_at,
        customer_orders.last_order_at,
        coalesce(customer_orders.number_of_orders, 0) as number_of_orders,
        cast(coalesce(customer_orders.number_of_revenue_orders, 0) as bigint) as number_of_revenue_orders,
        cast(coalesce(customer_orders.number_of_returned_orders, 0) as bigint) as number_of_returned_orders,
        cast(coalesce(customer_orders.number_of_cancelled_orders, 0) as bigint) as number_of_cancelled_orders,
        {{ money_total('coalesce(customer_orders.lifetime_value, 0)') }} as lifetime_value

    from customers
    left join customer_orders
        on customers.customer_id = customer_orders.customer_id

)

select * from final
