with

orders as (

    select * from {{ ref('orders') }}

),

spend as (

    select * from {{ ref('stg_marketing__spend') }}

),

orders_per_day as (

    select
        order_date as date_day,
        count(*) as number_of_orders,
        sum(case when is_revenue then 1 else 0 end) as number_of_revenue_orders,
        sum(revenue_amount) as revenue

    from orders
    group by order_date

),

spend_per_day as (

    select
        spend_date as date_day,
        sum(spend_amount) as marketing_spend,
        sum(clicks) as clicks

    from spend
    group by spend_date

),

active_days as (

    select date_day from orders_per_day
    union all
    select date_day from spend_per_day

),

bounds as (

    select
        min(date_day) as first_day,
        max(date_day) as last_day

    from active_days

),

days as (

    select {{ days_between('first_day', 'last_day') }} as date_day
    from bounds

),

final as (

    select
        days.date_day,
        coalesce(orders_per_day.number_of_orders, 0) as number_of_orders,
        cast(coalesce(orders_per_day.number_of_revenue_orders, 0) as bigint) as number_of_revenue_orders,
        {{ money_total('coalesce(orders_per_day.revenue, 0)') }} as revenue,
        {{ money_total('coalesce(spend_per_day.marketing_spend, 0)') }} as marketing_spend,
        cast(coalesce(spend_per_day.clicks, 0) as bigint) as clicks,
        cast(
            orders_per_day.revenue / nullif(spend_per_day.marketing_spend, 0) as numeric(18, 4)
        ) as revenue_per_spend

    from days
    left join orders_per_day
        on days.date_day = orders_per_day.date_day
    left join spend_per_day
        on days.date_day = spend_per_day.date_day

)

select * from final
