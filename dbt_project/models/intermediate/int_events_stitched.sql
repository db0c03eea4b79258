{#- Human events at or before as_of, each with the person it belongs to, without personal data.

    An event belongs to the person of its user id when it has one, else to the person of its
    anonymous id. This model is the one place of the event taxonomy: downstream models use the
    is_* roles, never event type names.
-#}

with

events as (

    select * from {{ ref('stg_clickstream__events') }}
    where occurred_at <= {{ as_of_timestamp() }}

),

identifiers as (

    select * from {{ ref('int_identifiers_stitched') }}

),

stitched as (

    select
        -- ids
        events.event_id,
        identifiers.person_id,
        events.anonymous_id,
        events.user_id,
        events.product_id,
        events.order_id,

        -- strings
        events.event_type,
        events.page_url,
        events.page_type,
        events.referrer,
        events.utm_source,
        events.utm_medium,
        events.utm_campaign,
        events.category,
        events.currency,
        events.device_type,
        -- only the properties models use: free-form properties may hold personal data
        case
            when events.event_type = 'filter_applied'
                then json_extract_string(events.properties, '$.filter')
        end as filter_name,
        case
            when events.event_type = 'purchase'
                then json_extract_string(events.properties, '$.discount_code')
        end as discount_code,

        -- numerics (money as decimals: sums are exact and independent of order)
        cast(events.price as decimal(18, 2)) as price,
        events.quantity,
        cast(events.revenue as decimal(18, 2)) as revenue,

        -- timestamps (UTC)
        events.occurred_at,
        events.loaded_at

    from events
    inner join identifiers
        on
            identifiers.identifier_type
            = case when events.user_id is not null then 'user_id' else 'anonymous_id' end
            and identifiers.identifier = coalesce(events.user_id, events.anonymous_id)

),

with_roles as (

    select
        *,
        event_type in {{ quoted_literal_list(var('page_view_event_types')) }} as is_page_view,
        event_type in {{ quoted_literal_list(var('page_view_event_types')) }}
        and page_type in {{ quoted_literal_list(var('content_page_types')) }}
            as is_content_page_view,
        event_type = 'product_view' as is_product_view,
        event_type = 'add_to_cart' as is_add_to_cart,
        event_type = 'checkout_start' as is_checkout_start,
        event_type = 'purchase' as is_purchase,
        event_type = 'filter_applied' as is_filter,
        event_type = 'filter_applied'
        and coalesce(filter_name in {{ quoted_literal_list(var('price_filter_names')) }}, false)
            as is_price_filter
    from stitched

)

select * from with_roles
