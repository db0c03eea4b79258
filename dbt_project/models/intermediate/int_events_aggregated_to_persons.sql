{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='person_id',
        on_schema_change='fail',
        post_hook="{{ persons_aggregate_post_hook() }}",
    )
}}

{#- Event-based features per person, as of var('as_of'): activity windows, views, carts, price
    sensitivity, device mix and favourite categories.

    Incremental by person (macros/persons_to_refresh.sql): a run recomputes the persons with new
    events, changed identifiers or orders, and those with an event crossing the edge of a window
    (the day, 7-day, 30-day and 90-day windows, the last hour and 5 minutes, the cart
    abandonment window) since the last run's as_of. The result equals a full rebuild
    (tests/dbt/test_dbt_sessions.py). -#}

{%- set as_of = as_of_timestamp() -%}
{%- set windows = [
    0, 300, 3600, var('cart_abandonment_window_hours') * 3600,
    7 * 86400, 30 * 86400, 90 * 86400,
] -%}
{%- set orders_fingerprints -%}
    select person_id, bit_xor(hash(order_id, ordered_at)) as orders_fingerprint
    from {{ ref('int_orders_deduplicated') }}
    group by person_id
{%- endset -%}

with

{% if is_incremental() %}

persons_to_refresh as (

    {{ persons_to_refresh(
        [(ref('int_events_stitched'), 'occurred_at', windows)],
        {'orders_fingerprint': orders_fingerprints},
    ) }}

),

{% endif %}

events as (

    select
        person_id,
        occurred_at,
        is_page_view,
        is_content_page_view,
        is_product_view,
        is_add_to_cart,
        is_filter,
        is_price_filter,
        price,
        category,
        device_type
    from {{ ref('int_events_stitched') }}
    {{ only_persons_to_refresh() }}

),

carts_added as (

    select person_id, occurred_at from events
    where is_add_to_cart

),

product_views as (

    select person_id, category from events
    where is_product_view and category is not null

),

device_events as (

    select person_id, device_type from events
    where device_type is not null

),

orders as (

    select person_id, ordered_at from {{ ref('int_orders_deduplicated') }}
    {{ only_persons_to_refresh() }}

),

identifiers_fingerprints as (

    {{ identifiers_fingerprints() }}

),

orders_fingerprints as (

    {{ orders_fingerprints }}

),

cart_timeline as (

    -- add-to-cart events next to the person's orders, to find the first order after each cart
    select
        person_id,
        occurred_at as happened_at,
        true as is_cart
    from carts_added

    union all

    select
        person_id,
        ordered_at as happened_at,
        false as is_cart
    from orders

),

next_orders as (

    select
        person_id,
        happened_at as added_at,
        is_cart,
        min(case when not is_cart then happened_at end) over (
            partition by person_id
            order by happened_at
            range between current row and unbounded following
        ) as next_ordered_at
    from cart_timeline

),

carts as (

    -- an add to cart is abandoned once the window passed without an order; younger carts
    -- without an order are still open
    select
        person_id,
        added_at,
        next_ordered_at is null
        or next_ordered_at
        > {{ dbt.dateadd('hour', var('cart_abandonment_window_hours'), 'added_at') }}
            as has_no_order_in_window,
        {{ dbt.dateadd('hour', var('cart_abandonment_window_hours'), 'added_at') }}
        <= {{ as_of }} as is_window_over
    from next_orders
    where is_cart

),

cart_metrics as (

    select
        person_id,
        count(*) as add_to_carts,
        count(case when has_no_order_in_window and is_window_over then 1 end) as abandoned_carts,
        count(
            case
                when
                    has_no_order_in_window
                    and is_window_over
                    and added_at > {{ dbt.dateadd('day', -30, as_of) }}
                    then 1
            end
        ) as abandoned_carts_30d,
        count(case when is_window_over then 1 end) as decided_carts
    from carts
    group by person_id

),

event_metrics as (

    select
        person_id,
        min(occurred_at) as first_event_at,
        max(occurred_at) as last_event_at,
        count(*) as events,
        count(case when occurred_at > {{ dbt.dateadd('day', -7, as_of) }} then 1 end) as events_7d,
        count(case when occurred_at > {{ dbt.dateadd('day', -30, as_of) }} then 1 end)
            as events_30d,
        count(case when occurred_at > {{ dbt.dateadd('day', -90, as_of) }} then 1 end)
            as events_90d,
        count(case when occurred_at > {{ dbt.dateadd('hour', -1, as_of) }} then 1 end)
            as events_last_hour,
        count(case when occurred_at > {{ dbt.dateadd('minute', -5, as_of) }} then 1 end)
            as events_last_5_minutes,
        count(case when is_page_view then 1 end) as page_views,
        count(case when is_content_page_view then 1 end) as content_page_views,
        count(case when is_product_view then 1 end) as product_views,
        count(
            case when is_product_view and occurred_at > {{ dbt.dateadd('day', -7, as_of) }} then 1 end
        ) as product_views_7d,
        count(
            case when is_add_to_cart and occurred_at > {{ dbt.dateadd('day', -7, as_of) }} then 1 end
        ) as add_to_carts_7d,
        count(case when is_filter then 1 end) as filter_uses,
        count(case when is_price_filter then 1 end) as price_filter_uses,
        avg(case when is_product_view then price end) as avg_price_viewed,
        count(distinct device_type) as device_types_used,
        count(device_type) as events_with_device,
        count(case when device_type = 'desktop' then 1 end) as desktop_events,
        count(case when device_type = 'mobile' then 1 end) as mobile_events,
        count(case when device_type = 'tablet' then 1 end) as tablet_events
    from events
    group by person_id

),

category_views as (

    select
        person_id,
        category,
        count(*) as views
    from product_views
    group by person_id, category

),

top_category_viewed as (

    select
        person_id,
        category as top_category_viewed
    from category_views
    qualify row_number() over (partition by person_id order by views desc, category) = 1

),

device_usage as (

    select
        person_id,
        device_type,
        count(*) as device_events
    from device_events
    group by person_id, device_type

),

primary_device as (

    select
        person_id,
        device_type as primary_device_type
    from device_usage
    qualify row_number() over (partition by person_id order by device_events desc, device_type) = 1

),

final as (

    select
        event_metrics.*,
        coalesce(cart_metrics.add_to_carts, 0) as add_to_carts,
        coalesce(cart_metrics.abandoned_carts, 0) as abandoned_carts,
        coalesce(cart_metrics.abandoned_carts_30d, 0) as abandoned_carts_30d,
        coalesce(cart_metrics.decided_carts, 0) as decided_carts,
        top_category_viewed.top_category_viewed,
        primary_device.primary_device_type,
        -- what the row was computed from (macros/persons_to_refresh.sql)
        {{ as_of }} as as_of,
        (select max(loaded_at) from {{ ref('int_events_stitched') }}) as events_loaded_through,
        identifiers_fingerprints.identifiers_fingerprint,
        orders_fingerprints.orders_fingerprint
    from event_metrics
    left join cart_metrics on event_metrics.person_id = cart_metrics.person_id
    left join top_category_viewed on event_metrics.person_id = top_category_viewed.person_id
    left join primary_device on event_metrics.person_id = primary_device.person_id
    left join identifiers_fingerprints
        on event_metrics.person_id = identifiers_fingerprints.person_id
    left join orders_fingerprints on event_metrics.person_id = orders_fingerprints.person_id

)

select * from final
