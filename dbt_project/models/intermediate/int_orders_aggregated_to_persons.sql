{#- Order-based features per person (recency, frequency, monetary value and friends), as of
    var('as_of'), from the deduplicated orders: every order counts once, whether the CRM, the
    web or both know it. Frequency and monetary value count completed orders only. -#}

{%- set as_of = as_of_timestamp() -%}

with

orders as (

    select * from {{ ref('int_orders_deduplicated') }}

),

aggregated as (

    select
        person_id,
        count(*) as orders,
        count(case when is_completed then 1 end) as completed_orders,
        coalesce(sum(case when is_completed then amount end), 0) as lifetime_spend,
        avg(case when is_completed then amount end) as avg_order_value,
        min(ordered_at) as first_ordered_at,
        max(case when is_completed then ordered_at end) as last_completed_ordered_at,
        count(
            case when is_completed and ordered_at > {{ dbt.dateadd('day', -7, as_of) }} then 1 end
        ) as orders_7d,
        count(
            case when is_completed and ordered_at > {{ dbt.dateadd('day', -30, as_of) }} then 1 end
        ) as orders_30d,
        count(case when is_web_order then 1 end) as web_orders,
        count(case when is_web_order and has_discount then 1 end) as discounted_orders,
        avg(product_price) as avg_price_bought
    from orders
    group by person_id

),

category_purchases as (

    select
        person_id,
        category,
        count(*) as purchases
    from orders
    where category is not null
    group by person_id, category

),

top_category_bought as (

    select
        person_id,
        category as top_category_bought
    from category_purchases
    qualify row_number() over (partition by person_id order by purchases desc, category) = 1

),

final as (

    select
        aggregated.*,
        top_category_bought.top_category_bought
    from aggregated
    left join top_category_bought on aggregated.person_id = top_category_bought.person_id

)

select * from final
