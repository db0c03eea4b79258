with

source as (

    select * from {{ source('clickstream', 'events') }}

),

renamed as (

    select
        -- ids
        event_id,
        anonymous_id,
        user_id,
        product_id,
        order_id,

        -- strings
        lower(event_type) as event_type,
        page_url,
        lower(page_type) as page_type,
        referrer,
        utm_source,
        utm_medium,
        utm_campaign,
        category,
        upper(currency) as currency,
        lower(device_type) as device_type,
        user_agent,
        ip,
        properties,

        -- numerics
        price,
        quantity,
        revenue,

        -- timestamps (UTC)
        {{ to_utc_timestamp('occurred_at') }} as occurred_at,
        {{ to_utc_timestamp('received_at') }} as received_at,

        -- lineage
        _source_file as source_file,
        _load_id as load_id,
        {{ to_utc_timestamp('_loaded_at') }} as loaded_at

    from source

),

humans as (

    -- bots are recognised by their user agent (var bot_user_agent_pattern); events without a
    -- user agent (e.g. email opens) are kept
    select * from renamed
    where
        user_agent is null
        or not regexp_matches(user_agent, {{ quoted_literal(var('bot_user_agent_pattern')) }}, 'i')

)

select * from humans
