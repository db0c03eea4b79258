{#- One row per product seen in an event at or before as_of: its category, latest price (in the
    reporting currency) and price band, popularity, and whether it may be recommended again
    after a purchase (seed product_categories). Content-based neighbours of new products and
    the popularity baselines of ml/ read it. -#}

with

events as (

    select * from {{ ref('int_events_stitched') }}
    where product_id is not null

),

categories as (

    select * from {{ ref('product_categories') }}

),

interactions as (

    select * from {{ ref('person_item_interactions') }}

),

latest_details as (

    -- the category and price of each product's latest event that has them
    select
        product_id,
        arg_max(category, occurred_at) filter (where category is not null) as category,
        arg_max(price, occurred_at) filter (where price is not null) as price,
        min(occurred_at) as first_seen_at
    from events
    group by product_id

),

popularity as (

    select
        product_id,
        count(*) as interacting_persons,
        count(*) filter (where purchases > 0) as purchasing_persons,
        sum(interaction_weight) as popularity_score
    from interactions
    group by product_id

),

final as (

    select
        latest_details.product_id,
        latest_details.category,
        latest_details.price,
        case
            when latest_details.price is null then null
            else ntile({{ var('recommendation_price_bands') }}) over (
                partition by latest_details.price is null order by latest_details.price
            )
        end as price_band,
        coalesce(popularity.interacting_persons, 0) as interacting_persons,
        coalesce(popularity.purchasing_persons, 0) as purchasing_persons,
        coalesce(popularity.popularity_score, 0.0) as popularity_score,
        row_number() over (
            order by coalesce(popularity.popularity_score, 0.0) desc, latest_details.product_id
        ) as popularity_rank,
        coalesce(categories.is_repeat_purchase, false) as is_repeat_purchase,
        latest_details.first_seen_at,
        {{ as_of_timestamp() }} as as_of
    from latest_details
    left join popularity on latest_details.product_id = popularity.product_id
    left join categories on latest_details.category = categories.category

)

select * from final
