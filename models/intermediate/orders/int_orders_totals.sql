with

orders as (

    select * from {{ ref('stg_shop__orders') }}

),

order_items as (

    select * from {{ ref('stg_shop__order_items') }}

),

payments as (

    select * from {{ ref('stg_shop__payments') }}

),

items_per_order as (

    select
        order_id,
        count(*) as number_of_lines,
        sum(quantity) as number_of_items,
        sum(line_amount) as order_amount

    from order_items
    group by order_id

),

payments_per_order as (

    select
        order_id,
        sum(case when is_successful then 1 else 0 end) as number_of_successful_payments,
        sum(case when is_successful then 0 else 1 end) as number_of_failed_payments,
        sum(case when is_successful then amount end) as paid_amount,
        max(case when is_successful and amount is null then 1 else 0 end) as unknown_amount_flag,
        max(case when is_successful then paid_at end) as paid_at

    from payments
    group by order_id

),

final as (

    select
        orders.order_id,
        coalesce(items_per_order.number_of_lines, 0) as number_of_lines,
        cast(coalesce(items_per_order.number_of_items, 0) as bigint) as number_of_items,
        {{ money_total('coalesce(items_per_order.order_amount, 0)') }} as order_amount,
        {{ money_total('coalesce(payments_per_order.paid_amount, 0)') }} as paid_amount,
        coalesce(payments_per_order.unknown_amount_flag, 0) = 1 as has_unknown_payment_amount,
        cast(coalesce(payments_per_order.number_of_successful_payments, 0) as bigint) as number_of_successful_payments,
        cast(coalesce(payments_per_order.number_of_failed_payments, 0) as bigint) as number_of_failed_payments,
        payments_per_order.paid_at,
        case
            when payments_per_order.number_of_successful_payments > 0 then 'paid'
            when payments_per_order.number_of_failed_payments > 0 then 'failed'
            else 'unpaid'
        end as payment_status

    from orders
    left join items_per_order
        on orders.order_id = items_per_order.order_id
    left join payments_per_order
        on orders.order_id = payments_per_order.order_id

)

select * from final
