with

products as (

    select * from {{ ref('stg_shop__products') }}

),

suppliers as (

    select * from {{ ref('stg_suppliers__suppliers') }}

),

order_items as (

    select * from {{ ref('stg_shop__order_items') }}

),

orders as (

    select * from {{ ref('orders') }}

),

events as (

    select * from {{ ref('stg_web__events') }}

),

sales as (

    select
        order_items.product_id,
        count(distinct order_items.order_id) as number_of_orders,
        sum(case when orders.is_revenue then order_items.quantity else 0 end) as units_sold,
        sum(case when orders.order_status = 'returned' then order_items.quantity else 0 end) as units_returned,
        sum(case when orders.is_revenue then order_items.line_amount else 0 end) as revenue

    from order_items
    inner join orders
        on order_items.order_id = orders.order_id
    group by order_items.product_id

),

web_activity as (

    select
        product_id,
        sum(case when event_type = 'add_to_cart' then 1 else 0 end) as add_to_cart_events,
        sum(case when event_type = 'checkout' then 1 else 0 end) as checkout_events,
        sum(case when event_type = 'purchase' then 1 else 0 end) as purchase_events

    from events
    where product_id is not null
    group by product_id

),

final as (

    select
        products.product_id,
        products.sku,
        products.product_name,
        products.category,
        products.price,
        products.is_active,
        products.supplier_id,
        suppliers.supplier_name,
        suppliers.lead_time_days as supplier_lead_time_days,
        coalesce(sales.number_of_orders, 0) as number_of_orders,
        cast(coalesce(sales.units_sold, 0) as bigint) as units_sold,
        cast(coalesce(sales.units_returned, 0) as bigint) as units_returned,
        {{ money_total('coalesce(sales.revenue, 0)') }} as revenue,
        cast(coalesce(web_activity.add_to_cart_events, 0) as bigint) as add_to_cart_events,
        cast(coalesce(web_activity.checkout_events, 0) as bigint) as checkout_events,
        cast(coalesce(web_activity.purchase_events, 0) as bigint) as purchase_events

    from products
    left join suppliers
        on products.supplier_id = suppliers.supplier_id
    left join sales
        on products.product_id = sales.product_id
    left join web_activity
        on products.product_id = web_activity.product_id

)

select * from final
