with

orders as (

    select * from {{ ref('stg_shop__orders') }}

),

order_totals as (

    select * from {{ ref('int_orders_totals') }}

),

customer_ids as (

    select * from {{ ref('int_customer_ids_mapped') }}

),

joined as (

    select
        orders.order_id,
        customer_ids.canonical_customer_id as customer_id,
        orders.customer_id as signup_customer_id,
        orders.order_status,
        orders.ordered_at,
        cast(orders.ordered_at as date) as order_date,
        orders.shipping_country_code,
        order_totals.number_of_lines,
        order_totals.number_of_items,
        order_totals.order_amount,
        order_totals.paid_amount,
        order_totals.payment_status,
        order_totals.has_unknown_payment_amount,
        order_totals.paid_at,
        orders.order_status in ('shipped', 'completed') as is_revenue

    from orders
    inner join order_totals
        on orders.order_id = order_totals.order_id
    inner join customer_ids
        on orders.customer_id = customer_ids.customer_id

),

final as (

    select
        *,
        {{ money_total('case when is_revenue then order_amount else 0 end') }} as revenue_amount

    from joined

)

select * from final
