{#- One row per person who consents to analytics (marts/person_consents) with every behavioural
    feature, as of var('as_of'). Only events, sessions,
    orders and customers at or before as_of count. Counts are 0 when there is nothing to count;
    rates and averages are null when their denominator is 0. -#}

{%- set as_of = as_of_timestamp() -%}

with

identifiers as (

    select * from {{ ref('int_identifiers_stitched') }}

),

profiled_persons as (

    -- only persons who consent to analytics are profiled
    select person_id from {{ ref('person_consents') }}
    where has_analytics_consent

),

customers as (

    select * from {{ ref('stg_crm__customers') }}

),

event_features as (

    select * from {{ ref('int_events_aggregated_to_persons') }}

),

session_features as (

    select * from {{ ref('int_sessions_aggregated_to_persons') }}

),

order_features as (

    select * from {{ ref('int_orders_aggregated_to_persons') }}

),

persons as (

    select
        person_id,
        max(person_customer_id) as customer_id,
        count(case when identifier_type = 'anonymous_id' then 1 end) as anonymous_ids,
        count(case when identifier_type = 'user_id' then 1 end) as user_ids
    from identifiers
    where person_id in (select person_id from profiled_persons)
    group by person_id

),

joined as (

    select
        persons.person_id,
        persons.customer_id,
        persons.anonymous_ids,
        persons.user_ids,
        customers.country,
        customers.loyalty_tier,
        customers.signup_at,
        event_features.first_event_at,
        event_features.last_event_at,
        order_features.first_ordered_at,
        order_features.last_completed_ordered_at,
        -- the earliest of first event, first order and signup (a least() that skips nulls)
        least(
            coalesce(
                event_features.first_event_at, order_features.first_ordered_at, customers.signup_at
            ),
            coalesce(
                order_features.first_ordered_at, customers.signup_at, event_features.first_event_at
            ),
            coalesce(
                customers.signup_at, event_features.first_event_at, order_features.first_ordered_at
            )
        ) as first_seen_at,

        coalesce(event_features.events, 0) as events,
        coalesce(event_features.events_7d, 0) as events_7d,
        coalesce(event_features.events_30d, 0) as events_30d,
        coalesce(event_features.events_90d, 0) as events_90d,
        coalesce(event_features.events_last_hour, 0) as events_last_hour,
        coalesce(event_features.events_last_5_minutes, 0) as events_last_5_minutes,

        coalesce(session_features.sessions, 0) as sessions,
        coalesce(session_features.sessions_7d, 0) as sessions_7d,
        coalesce(session_features.sessions_30d, 0) as sessions_30d,
        coalesce(session_features.sessions_90d, 0) as sessions_90d,
        session_features.avg_session_duration_seconds,
        session_features.pages_per_session,
        session_features.avg_content_pages_per_session,
        coalesce(session_features.converted_sessions, 0) as converted_sessions,
        session_features.conversion_rate,
        session_features.bounce_rate,

        coalesce(event_features.page_views, 0) as page_views,
        coalesce(event_features.content_page_views, 0) as content_page_views,
        coalesce(event_features.product_views, 0) as product_views,
        coalesce(event_features.product_views_7d, 0) as product_views_7d,
        coalesce(event_features.add_to_carts, 0) as add_to_carts,
        coalesce(event_features.add_to_carts_7d, 0) as add_to_carts_7d,
        coalesce(event_features.abandoned_carts, 0) as abandoned_carts,
        coalesce(event_features.abandoned_carts_30d, 0) as abandoned_carts_30d,
        event_features.decided_carts,

        coalesce(order_features.orders, 0) as orders,
        coalesce(order_features.completed_orders, 0) as completed_orders,
        coalesce(order_features.lifetime_spend, 0) as lifetime_spend,
        order_features.avg_order_value,
        coalesce(order_features.orders_7d, 0) as orders_7d,
        coalesce(order_features.orders_30d, 0) as orders_30d,
        coalesce(order_features.web_orders, 0) as web_orders,
        coalesce(order_features.discounted_orders, 0) as discounted_orders,

        coalesce(event_features.filter_uses, 0) as filter_uses,
        coalesce(event_features.price_filter_uses, 0) as price_filter_uses,
        event_features.avg_price_viewed,
        order_features.avg_price_bought,

        event_features.top_category_viewed,
        order_features.top_category_bought,

        coalesce(event_features.device_types_used, 0) as device_types_used,
        event_features.primary_device_type,
        event_features.events_with_device,
        event_features.desktop_events,
        event_features.mobile_events,
        event_features.tablet_events
    from persons
    left join customers on persons.customer_id = customers.customer_id
    left join event_features on persons.person_id = event_features.person_id
    left join session_features on persons.person_id = session_features.person_id
    left join order_features on persons.person_id = order_features.person_id

),

final as (

    select
        -- identity
        person_id,
        customer_id,
        customer_id is not null as is_customer,
        anonymous_ids as anonymous_id_count,
        user_ids as user_id_count,
        country,
        loyalty_tier,

        -- lifecycle
        signup_at,
        first_seen_at,
        last_event_at as last_seen_at,
        cast(floor(
            {{ dbt.datediff('first_seen_at', as_of, 'second') }} / 86400.0
        ) as integer) as tenure_days,
        cast(floor(
            {{ dbt.datediff('last_event_at', as_of, 'second') }} / 86400.0
        ) as integer) as days_since_last_seen,

        -- orders (completed orders: CRM and web, each order once)
        cast(floor(
            {{ dbt.datediff('last_completed_ordered_at', as_of, 'second') }} / 86400.0
        ) as integer) as recency_days,
        first_ordered_at,
        last_completed_ordered_at as last_ordered_at,
        orders as order_count,
        completed_orders,
        cast(lifetime_spend as decimal(18, 2)) as lifetime_spend,
        cast(avg_order_value as decimal(18, 2)) as avg_order_value,
        orders_7d as order_count_7d,
        orders_30d as order_count_30d,
        web_orders,

        -- activity
        events as event_count,
        events_7d as event_count_7d,
        events_30d as event_count_30d,
        events_90d as event_count_90d,
        events_last_hour as event_count_last_hour,
        events_last_5_minutes as event_count_last_5_minutes,
        sessions as session_count,
        sessions_7d as session_count_7d,
        sessions_30d as session_count_30d,
        sessions_90d as session_count_90d,
        avg_session_duration_seconds,
        pages_per_session,
        avg_content_pages_per_session,
        converted_sessions,
        conversion_rate,
        bounce_rate,

        -- browsing and carts
        page_views,
        product_views,
        product_views_7d,
        content_page_views,
        case when page_views > 0 then content_page_views * 1.0 / page_views end
            as content_page_share,
        add_to_carts,
        add_to_carts_7d,
        abandoned_carts,
        abandoned_carts_30d,
        case when decided_carts > 0 then abandoned_carts * 1.0 / decided_carts end
            as cart_abandonment_rate,
        case when sessions > 0 then abandoned_carts * 1.0 / sessions end
            as abandoned_carts_per_session,
        top_category_viewed,
        top_category_bought,

        -- price sensitivity
        discounted_orders,
        case when web_orders > 0 then discounted_orders * 1.0 / web_orders end
            as discounted_order_share,
        filter_uses,
        price_filter_uses,
        case when filter_uses > 0 then price_filter_uses * 1.0 / filter_uses end
            as price_filter_share,
        cast(avg_price_viewed as decimal(18, 2)) as avg_price_viewed,
        cast(avg_price_bought as decimal(18, 2)) as avg_price_bought,
        case when avg_price_viewed > 0 then avg_price_bought / avg_price_viewed end
            as price_bought_to_viewed_ratio,

        -- devices
        device_types_used,
        primary_device_type,
        case when events_with_device > 0 then desktop_events * 1.0 / events_with_device end
            as desktop_share,
        case when events_with_device > 0 then mobile_events * 1.0 / events_with_device end
            as mobile_share,
        case when events_with_device > 0 then tablet_events * 1.0 / events_with_device end
            as tablet_share,

        {{ as_of }} as as_of
    from joined

)

select * from final
