{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
    )
}}

{#- Accepted events of humans, typed, identifiers pseudonymized, personal data removed.

    Incremental: each run stages only the loads not staged yet (load_id), so the bot pattern
    and the keyed hash cost once per event, not once per run. Erasure deletes a person's rows
    here as in raw.events; raw-event retention does not (these rows hold no personal data, and
    the identity graph and the incremental models are rebuilt from them). A change of the bot
    pattern needs --full-refresh.
-#}

with

source as (

    select * from {{ source('clickstream', 'events') }}
    {% if is_incremental() %}
    where _load_id not in (select distinct load_id from {{ this }})
    {% endif %}

),

humans as (

    -- bots are recognised by their user agent (var bot_user_agent_pattern); events without a
    -- user agent (e.g. email opens) are kept
    select * from source
    where
        user_agent is null
        or not regexp_matches(user_agent, {{ quoted_literal(var('bot_user_agent_pattern')) }}, 'i')

),

renamed as (

    select
        -- ids (person identifiers pseudonymized with the secret key)
        event_id,
        {{ pseudonymize('anonymous_id') }} as anonymous_id,
        {{ pseudonymize('user_id') }} as user_id,
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
        -- only the properties models use (free-form properties may hold personal data); what
        -- an event is, and so which of them matter, comes from the event taxonomy seed
        -- (int_events_stitched): a filter's name, an order's discount code (Segment: coupon),
        -- a consent statement's purpose and yes/no
        json_extract_string(properties, '$.filter') as filter_name,
        coalesce(
            json_extract_string(properties, '$.discount_code'),
            json_extract_string(properties, '$.coupon')
        ) as discount_code,
        lower(trim(json_extract_string(properties, '$.purpose'))) as consent_purpose,
        try_cast(json_extract_string(properties, '$.granted') as boolean) as consent_is_granted,
        -- the experiment and variant an event reports (experiment exposures; Segment's
        -- Experiment Viewed: experiment_id / experiment_name, variation_name / variation_id)
        coalesce(
            json_extract_string(properties, '$.experiment_id'),
            json_extract_string(properties, '$.experiment_name')
        ) as experiment_id,
        coalesce(
            json_extract_string(properties, '$.experiment_variant'),
            json_extract_string(properties, '$.variant'),
            json_extract_string(properties, '$.variation_name'),
            json_extract_string(properties, '$.variation_id')
        ) as experiment_variant,

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

    from humans

)

select * from renamed
