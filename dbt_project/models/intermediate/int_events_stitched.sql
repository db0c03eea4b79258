{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='event_id',
        on_schema_change='fail',
        pre_hook="{% if is_incremental() %}delete from {{ this }} where occurred_at > {{ as_of_timestamp() }}{% endif %}",
    )
}}

{#- Human events at or before as_of, each with the person it belongs to, without personal data.

    An event belongs to the person of its user id when it has one, else to the person of its
    anonymous id. This model is the one place of the event taxonomy: downstream models use the
    is_* roles, never event type names.

    Incremental, so that a run costs in proportion to its new events: it (re)stitches only
    - the events of loads not stitched yet (load_id),
    - events later than the latest one stitched, now at or before as_of (as_of moved forward),
    - the events of identifiers whose person changed (a login linked them to another person),
    replacing any stored row of the same event_id. Which identifiers changed: every row keeps
    when it was stitched (stitched_at, the dbt run's start) and int_identifiers_stitched keeps
    when each identifier got its current person (person_assigned_at); the identifiers assigned
    after the latest stitched_at moved since, so finding them costs in proportion to the
    identifiers, not to the stored events. The pre-hook drops the events after as_of when as_of
    moved back. The result equals a full rebuild (tests/dbt/test_dbt_sessions.py). A
    change of the bot pattern or of the event taxonomy (seeds/event_taxonomy.csv) needs
    --full-refresh, as any change of an incremental model's logic does.
-#}

with

events as (

    -- the identifier an event is stitched by: its user id when it has one, else its anonymous id
    select
        *,
        case when user_id is not null then 'user_id' else 'anonymous_id' end as identifier_type,
        coalesce(user_id, anonymous_id) as identifier
    from {{ ref('stg_clickstream__events') }}
    where occurred_at <= {{ as_of_timestamp() }}

),

identifiers as (

    select * from {{ ref('int_identifiers_stitched') }}

),

{% if is_incremental() %}

stored_loads as (

    select distinct load_id from {{ this }}

),

latest_stored as (

    select coalesce(max(occurred_at), '-infinity'::timestamp) as occurred_at from {{ this }}

),

moved_identifiers as (

    -- identifiers that got their person after the last run stitched events: their stored
    -- events may belong to another person than the one they now belong to
    select identifier_type, identifier
    from identifiers
    where
        person_assigned_at
        > (select coalesce(max(stitched_at), '-infinity'::timestamp) from {{ this }})

),

events_to_stitch as (

    select events.*
    from events
    where
        coalesce(events.load_id, '') not in (select coalesce(load_id, '') from stored_loads)
        or events.occurred_at > (select occurred_at from latest_stored)
        or exists (
            select 1 from moved_identifiers
            where
                moved_identifiers.identifier_type = events.identifier_type
                and moved_identifiers.identifier = events.identifier
        )

),

{% else %}

events_to_stitch as (

    select * from events

),

{% endif %}

rate_periods as (

    {{ exchange_rate_periods() }}

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
        events.filter_name,
        events.discount_code,
        events.consent_purpose,
        events.consent_is_granted,

        -- numerics (money as decimals in the reporting currency, converted at the event's
        -- time: sums are exact and independent of order; null without an exchange rate)
        {%- set rate = exchange_rate('events.currency', 'rate_periods.rate') %}
        {{ converted_amount('events.price', rate) }} as price,
        events.quantity,
        {{ converted_amount('events.revenue', rate) }} as revenue,
        {{ rate }} as exchange_rate,

        -- timestamps (UTC)
        events.occurred_at,

        -- lineage
        events.load_id,
        events.loaded_at,
        {{ run_started_at_timestamp() }} as stitched_at

    from events_to_stitch as events
    inner join identifiers
        on
            identifiers.identifier_type = events.identifier_type
            and identifiers.identifier = events.identifier
    left join rate_periods
        on {{ exchange_rate_period_matches('rate_periods', 'events.currency', 'events.occurred_at') }}

),

taxonomy as (

    select
        lower(trim(event_type)) as event_type,
        nullif(lower(trim(page_type)), '') as page_type,
        role,
        counts_as_page_view
    from {{ ref('event_taxonomy') }}

),

with_roles as (

    -- the role of each event from the taxonomy seed: the row of its event type and page type,
    -- else the row of its event type alone; an event type without a row has no role
    select
        stitched.*,
        coalesce(by_page_type.role, by_event_type.role) as event_role,
        coalesce(by_page_type.counts_as_page_view, by_event_type.counts_as_page_view, false)
            as is_page_view
    from stitched
    left join taxonomy as by_page_type
        on
            stitched.event_type = by_page_type.event_type
            and stitched.page_type = by_page_type.page_type
    left join taxonomy as by_event_type
        on
            stitched.event_type = by_event_type.event_type
            and by_event_type.page_type is null

),

with_flags as (

    select
        *,
        is_page_view and page_type in {{ quoted_literal_list(var('content_page_types')) }}
            as is_content_page_view,
        coalesce(event_role = 'product_view', false) as is_product_view,
        coalesce(event_role = 'add_to_cart', false) as is_add_to_cart,
        coalesce(event_role = 'checkout_start', false) as is_checkout_start,
        coalesce(event_role = 'purchase', false) as is_purchase,
        coalesce(event_role = 'filter', false) as is_filter,
        coalesce(event_role = 'consent_update', false) as is_consent_update,
        coalesce(
            event_role = 'filter'
            and filter_name in {{ quoted_literal_list(var('price_filter_names')) }},
            false
        ) as is_price_filter
    from with_roles

)

select * from with_flags
