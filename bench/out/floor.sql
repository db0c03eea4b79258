-- Floor of bench/run.py: the SQL of dbt's compiled models up to marts.person_features,
-- compiled with --full-refresh --vars '{"as_of": "2026-11-01T00:00:00+00:00"}'. Generated: do not edit.
-- Run it on a DuckDB file holding these input tables: "raw"."crm_consents", "raw"."crm_customers", "raw"."crm_orders", "raw"."events".

set TimeZone = 'UTC';

set memory_limit = '2GB';

create schema if not exists scratch;

-- stg_crm__consents
create or replace table "scratch"."stg_crm__consents" as
with

source as (

    select * from "raw"."crm_consents"

),

renamed as (

    select
        segwh_pseudonymize(trim(customer_id)) as customer_id,
        lower(trim(purpose)) as purpose,
        try_cast(granted as boolean) as is_granted,
        timezone('UTC', try_cast(updated_at as timestamptz)) as updated_at

    from source

)

select * from renamed
;

-- stg_clickstream__events
create or replace table "scratch"."stg_clickstream__events" as
with

source as (

    select * from "raw"."events"
    

),

humans as (

    -- bots are recognised by their user agent (var bot_user_agent_pattern); events without a
    -- user agent (e.g. email opens) are kept
    select * from source
    where
        user_agent is null
        or not regexp_matches(user_agent, 'bot|crawl|spider|slurp|headless|phantomjs|lighthouse|python-requests|curl/|wget/|scrapy|httpclient', 'i')

),

renamed as (

    select
        -- ids (person identifiers pseudonymized with the secret key)
        event_id,
        segwh_pseudonymize(anonymous_id) as anonymous_id,
        segwh_pseudonymize(user_id) as user_id,
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
        -- only the properties models use: free-form properties may hold personal data
        case
            when lower(event_type) = 'filter_applied'
                then json_extract_string(properties, '$.filter')
        end as filter_name,
        case
            when lower(event_type) = 'purchase'
                then json_extract_string(properties, '$.discount_code')
        end as discount_code,
        case
            when lower(event_type) = 'consent_updated'
                then lower(trim(json_extract_string(properties, '$.purpose')))
        end as consent_purpose,
        case
            when lower(event_type) = 'consent_updated'
                then try_cast(json_extract_string(properties, '$.granted') as boolean)
        end as consent_is_granted,

        -- numerics
        price,
        quantity,
        revenue,

        -- timestamps (UTC)
        timezone('UTC', try_cast(occurred_at as timestamptz)) as occurred_at,
        timezone('UTC', try_cast(received_at as timestamptz)) as received_at,

        -- lineage
        _source_file as source_file,
        _load_id as load_id,
        timezone('UTC', try_cast(_loaded_at as timestamptz)) as loaded_at

    from humans

)

select * from renamed
;

-- stg_crm__orders
create or replace table "scratch"."stg_crm__orders" as
with

source as (

    select * from "raw"."crm_orders"

),

renamed as (

    select
        -- ids
        trim(order_id) as order_id,
        segwh_pseudonymize(trim(customer_id)) as customer_id,

        -- strings
        upper(currency) as currency,
        lower(status) as status,

        -- numerics
        try_cast(total_amount as decimal(18, 2)) as total_amount,
        try_cast(items_count as integer) as items_count,

        -- timestamps (UTC)
        timezone('UTC', try_cast(ordered_at as timestamptz)) as ordered_at

    from source

)

select * from renamed
;

-- stg_crm__customers
create or replace table "scratch"."stg_crm__customers" as
with

source as (

    select * from "raw"."crm_customers"

),

renamed as (

    select
        -- ids (pseudonymized with the secret key; email, names and phone are not staged:
        -- nothing downstream needs them, erasure finds a person by email in raw)
        segwh_pseudonymize(trim(customer_id)) as customer_id,

        -- attributes
        upper(country) as country,
        city,
        try_cast(birth_year as integer) as birth_year,
        income_bracket,
        education,
        lower(loyalty_tier) as loyalty_tier,

        -- timestamps (UTC)
        timezone('UTC', try_cast(signup_at as timestamptz)) as signup_at,
        timezone('UTC', try_cast(updated_at as timestamptz)) as updated_at

    from source

)

select * from renamed
;

-- int_identifier_pairs
create or replace table "scratch"."int_identifier_pairs" as
with

new_events as (

    select anonymous_id, user_id, occurred_at, loaded_at
    from "scratch"."stg_clickstream__events"
    

),

seen as (

    select
        anonymous_id,
        user_id,
        min(occurred_at) as first_seen_at
    from new_events
    group by anonymous_id, user_id

),



merged as (

    select * from seen

),



final as (

    select
        -- either id may be null: the key names the pair, nulls included
        md5(cast(coalesce(anonymous_id, '') || '|' || coalesce(user_id, '') as TEXT)) as pair_key,
        anonymous_id,
        user_id,
        first_seen_at,
        (select max(loaded_at) from new_events) as events_loaded_through
    from merged

)

select * from final
;

-- int_identifiers_stitched
create or replace table "scratch"."int_identifiers_stitched" as
with recursive

identifier_pairs as (

    -- every distinct (anonymous id, user id) combination seen on an event at or before as_of
    -- (either may be null); int_identifier_pairs keeps them incrementally
    select
        anonymous_id,
        user_id
    from "scratch"."int_identifier_pairs"
    where first_seen_at <= timezone('UTC', cast('2026-11-01T00:00:00+00:00' as timestamptz))

),

customers as (

    select customer_id
    from "scratch"."stg_crm__customers"
    where
        customer_id is not null
        and (signup_at is null or signup_at <= timezone('UTC', cast('2026-11-01T00:00:00+00:00' as timestamptz)))

),

orders as (

    select customer_id
    from "scratch"."stg_crm__orders"
    where ordered_at <= timezone('UTC', cast('2026-11-01T00:00:00+00:00' as timestamptz))

),

identifiers as (

    select distinct 'anonymous_id' as identifier_type, anonymous_id as identifier
    from identifier_pairs
    where anonymous_id is not null

    union

    select distinct 'user_id' as identifier_type, user_id as identifier
    from identifier_pairs
    where user_id is not null

    union

    select 'user_id' as identifier_type, customer_id as identifier
    from customers

    union

    select 'user_id' as identifier_type, customer_id as identifier
    from orders

),

observed_links as (

    select
        anonymous_id,
        user_id
    from identifier_pairs
    where anonymous_id is not null and user_id is not null

),

shared_devices as (

    select anonymous_id
    from observed_links
    group by anonymous_id
    having count(*) > 3

),

links as (

    select observed_links.*
    from observed_links
    left join shared_devices on observed_links.anonymous_id = shared_devices.anonymous_id
    where shared_devices.anonymous_id is null

),

nodes as (

    select
        identifier_type,
        identifier,
        -- '1:' sorts before '2:': the smallest label of a person is a customer id if it has one
        case identifier_type when 'user_id' then '1:' else '2:' end || identifier as node
    from identifiers

),

edges as (

    select '2:' || anonymous_id as from_node, '1:' || user_id as to_node
    from links

    union all

    select '1:' || user_id as from_node, '2:' || anonymous_id as to_node
    from links

),

components (node, component) using key (node) as (

    select node, node as component
    from nodes

    union

    -- nodes whose label changed in the last round pass it to neighbours with a larger label
    select
        edges.to_node as node,
        min(components.component) as component
    from components
    inner join edges on components.node = edges.from_node
    inner join recurring.components as current_labels on edges.to_node = current_labels.node
    group by edges.to_node
    having min(components.component) < min(current_labels.component)

),

stitched as (

    select
        nodes.identifier_type,
        nodes.identifier,
        md5(cast(components.component as TEXT)) as person_id,
        case
            when components.component like '1:%' then substr(components.component, 3)
        end as person_customer_id,
        shared_devices.anonymous_id is not null as is_shared_device
    from nodes
    inner join components on nodes.node = components.node
    left join shared_devices
        on nodes.identifier_type = 'anonymous_id' and nodes.identifier = shared_devices.anonymous_id

)

select * from stitched
;

-- int_events_stitched
create or replace table "scratch"."int_events_stitched" as
with

events as (

    -- the identifier an event is stitched by: its user id when it has one, else its anonymous id
    select
        *,
        case when user_id is not null then 'user_id' else 'anonymous_id' end as identifier_type,
        coalesce(user_id, anonymous_id) as identifier
    from "scratch"."stg_clickstream__events"
    where occurred_at <= timezone('UTC', cast('2026-11-01T00:00:00+00:00' as timestamptz))

),

identifiers as (

    select * from "scratch"."int_identifiers_stitched"

),



events_to_stitch as (

    select * from events

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

        -- numerics (money as decimals: sums are exact and independent of order)
        cast(events.price as decimal(18, 2)) as price,
        events.quantity,
        cast(events.revenue as decimal(18, 2)) as revenue,

        -- timestamps (UTC)
        events.occurred_at,

        -- lineage
        events.load_id,
        events.loaded_at

    from events_to_stitch as events
    inner join identifiers
        on
            identifiers.identifier_type = events.identifier_type
            and identifiers.identifier = events.identifier

),

with_roles as (

    select
        *,
        event_type in ('page_view', 'product_view') as is_page_view,
        event_type in ('page_view', 'product_view')
        and page_type in ('content')
            as is_content_page_view,
        event_type = 'product_view' as is_product_view,
        event_type = 'add_to_cart' as is_add_to_cart,
        event_type = 'checkout_start' as is_checkout_start,
        event_type = 'purchase' as is_purchase,
        event_type = 'filter_applied' as is_filter,
        event_type = 'filter_applied'
        and coalesce(filter_name in ('price'), false)
            as is_price_filter
    from stitched

)

select * from with_roles
;

-- int_consent_statements_unioned
create or replace table "scratch"."int_consent_statements_unioned" as
with

identifiers as (

    select * from "scratch"."int_identifiers_stitched"

),

crm_consents as (

    select * from "scratch"."stg_crm__consents"

),

consent_events as (

    select * from "scratch"."int_events_stitched"
    where event_type = 'consent_updated'

),

crm_statements as (

    select
        identifiers.person_id,
        crm_consents.purpose,
        crm_consents.is_granted,
        crm_consents.updated_at as stated_at,
        'crm' as statement_source
    from crm_consents
    inner join identifiers
        on
            identifiers.identifier_type = 'user_id'
            and identifiers.identifier = crm_consents.customer_id
    where
        crm_consents.updated_at <= timezone('UTC', cast('2026-11-01T00:00:00+00:00' as timestamptz))
        and crm_consents.purpose is not null
        and crm_consents.is_granted is not null

),

event_statements as (

    select
        person_id,
        consent_purpose as purpose,
        consent_is_granted as is_granted,
        occurred_at as stated_at,
        'event' as statement_source
    from consent_events
    where consent_purpose is not null and consent_is_granted is not null

),

unioned as (

    select * from crm_statements
    union all
    select * from event_statements

)

select * from unioned
;

-- int_orders_deduplicated
create or replace table "scratch"."int_orders_deduplicated" as
with

crm_orders as (

    select * from "scratch"."stg_crm__orders"
    where ordered_at <= timezone('UTC', cast('2026-11-01T00:00:00+00:00' as timestamptz))

),

purchase_events as (

    select * from "scratch"."int_events_stitched"
    where is_purchase

),

identifiers as (

    select * from "scratch"."int_identifiers_stitched"
    where identifier_type = 'user_id'

),

web_orders as (

    -- the first purchase event of each order
    select
        coalesce(order_id, 'event:' || event_id) as order_id,
        person_id,
        occurred_at,
        revenue,
        currency,
        category,
        price,
        quantity,
        discount_code
    from purchase_events
    qualify row_number() over (
        partition by coalesce(order_id, 'event:' || event_id)
        order by occurred_at, event_id
    ) = 1

),

crm_orders_with_person as (

    select
        crm_orders.*,
        identifiers.person_id
    from crm_orders
    inner join identifiers on crm_orders.customer_id = identifiers.identifier

),

combined as (

    select
        coalesce(crm.order_id, web.order_id) as order_id,
        coalesce(crm.person_id, web.person_id) as person_id,
        crm.customer_id,
        case
            when crm.order_id is not null and web.order_id is not null then 'crm_and_web'
            when crm.order_id is not null then 'crm'
            else 'web'
        end as order_source,
        -- a purchase the CRM does not know yet is taken as completed
        coalesce(crm.status, 'completed') as status,
        coalesce(crm.total_amount, web.revenue) as amount,
        coalesce(crm.currency, web.currency) as currency,
        crm.items_count,
        web.category,
        web.price as product_price,
        web.discount_code,
        coalesce(crm.ordered_at, web.occurred_at) as ordered_at
    from crm_orders_with_person as crm
    full outer join web_orders as web on crm.order_id = web.order_id

),

final as (

    select
        *,
        status = 'completed' as is_completed,
        order_source <> 'crm' as is_web_order,
        discount_code is not null as has_discount
    from combined

)

select * from final
;

-- sessions
create or replace table "scratch"."sessions" as
with recursive

events as (

    select * from "scratch"."int_events_stitched"

),

long_chain_event_source as (

    select * from "scratch"."int_events_stitched"

),



events_to_sessionize as (

    select * from events

),



sequenced as (

    select
        person_id,
        event_id,
        occurred_at,
        is_page_view,
        is_product_view,
        is_content_page_view,
        is_add_to_cart,
        is_checkout_start,
        is_purchase,
        revenue,
        page_url,
        page_type,
        device_type,
        utm_source,
        utm_medium,
        utm_campaign,
        referrer,
        row_number() over person_timeline as event_sequence,
        lag(occurred_at) over person_timeline as previous_occurred_at
    from events_to_sessionize
    window person_timeline as (partition by person_id order by occurred_at, event_id)

),

activity_breaks as (

    -- a chain of activity starts at a person's first event, after the inactivity timeout and
    -- (optionally) at midnight
    select
        *,
        coalesce(
            occurred_at >= 

    (previous_occurred_at + cast(1800 as bigint) * interval 1 second),
            true
        ) as starts_chain
    from sequenced

),

chains as (

    -- every event with the start of its chain (the latest chain start so far)
    select
        *,
        max(case when starts_chain then occurred_at end) over (
            partition by person_id
            order by occurred_at, event_id
            rows between unbounded preceding and current row
        ) as chain_started_at
    from activity_breaks

),

chain_sessions as (

    select
        person_id,
        chain_started_at as started_at,
        max(occurred_at) as ended_at,
        count(*) as events,
        count(case when is_page_view then 1 end) as page_views,
        count(case when is_product_view then 1 end) as product_views,
        count(case when is_content_page_view then 1 end) as content_page_views,
        count(case when is_add_to_cart then 1 end) as add_to_carts,
        count(case when is_checkout_start then 1 end) as checkout_starts,
        count(case when is_purchase then 1 end) as purchases,
        cast(coalesce(sum(case when is_purchase then revenue end), 0) as decimal(18, 2))
            as revenue,
        min_by(page_url, event_sequence) filter (where is_page_view) as entry_page_url,
        min_by(page_type, event_sequence) filter (where is_page_view) as entry_page_type,
        max_by(page_url, event_sequence) filter (where is_page_view) as exit_page_url,
        max_by(page_type, event_sequence) filter (where is_page_view) as exit_page_type,
        min_by(device_type, event_sequence) filter (where device_type is not null)
            as device_type,
        -- acquisition: the first event of the session that carries a referrer or utm tags
        min_by(utm_source, event_sequence) filter (where coalesce(utm_source, utm_medium, utm_campaign, referrer) is not null) as utm_source,
        min_by(utm_medium, event_sequence) filter (where coalesce(utm_source, utm_medium, utm_campaign, referrer) is not null) as utm_medium,
        min_by(utm_campaign, event_sequence) filter (where coalesce(utm_source, utm_medium, utm_campaign, referrer) is not null)
            as utm_campaign,
        min_by(referrer, event_sequence) filter (where coalesce(utm_source, utm_medium, utm_campaign, referrer) is not null) as referrer
    from chains
    group by person_id, chain_started_at

),

long_chains as (

    -- chains that reach the maximum length are cut into several sessions below
    select
        person_id,
        started_at as chain_started_at,
        ended_at as chain_ended_at
    from chain_sessions
    where ended_at >= 

    (started_at + cast(86400 as bigint) * interval 1 second)

),

long_chain_events as (

    select
        long_chain_event_source.*,
        long_chains.chain_started_at,
        row_number() over (
            partition by long_chain_event_source.person_id
            order by long_chain_event_source.occurred_at, long_chain_event_source.event_id
        ) as event_sequence
    from long_chain_event_source
    inner join long_chains
        on long_chain_event_source.person_id = long_chains.person_id
        and long_chain_event_source.occurred_at
        between long_chains.chain_started_at and long_chains.chain_ended_at

),

long_chain_instants as (

    select distinct
        person_id,
        chain_started_at,
        occurred_at
    from long_chain_events

),

length_limit_lookups as (

    -- for each instant of a long chain, the instant a session starting there reaches the
    -- maximum length (a probe), next to the chain's instants (candidate session starts)
    select
        person_id,
        chain_started_at,
        occurred_at as from_instant,
        occurred_at as at_time,
        1 as is_candidate
    from long_chain_instants

    union all

    select
        person_id,
        chain_started_at,
        occurred_at as from_instant,
        

    (occurred_at + cast(86400 as bigint) * interval 1 second) as at_time,
        0 as is_candidate
    from long_chain_instants

),

next_starts as (

    -- the next session starts at the first instant at or after the probe
    select
        person_id,
        chain_started_at,
        from_instant,
        is_candidate,
        min(case when is_candidate = 1 then at_time end) over (
            partition by person_id, chain_started_at
            order by at_time, is_candidate
            rows between current row and unbounded following
        ) as next_started_at
    from length_limit_lookups

),

length_limits as (

    select
        person_id,
        chain_started_at,
        from_instant,
        next_started_at
    from next_starts
    where is_candidate = 0 and next_started_at is not null

),

length_splits (person_id, chain_started_at, session_started_at) as (

    -- walk from each long chain's start to the start of its next session, and on
    select
        person_id,
        chain_started_at,
        chain_started_at as session_started_at
    from long_chains

    union all

    select
        length_limits.person_id,
        length_limits.chain_started_at,
        length_limits.next_started_at as session_started_at
    from length_splits
    inner join length_limits
        on length_splits.person_id = length_limits.person_id
        and length_splits.chain_started_at = length_limits.chain_started_at
        and length_splits.session_started_at = length_limits.from_instant
    where length_limits.next_started_at > length_splits.session_started_at

),

long_chain_timeline as (

    -- session starts (markers) next to the chain's events
    select
        person_id,
        chain_started_at,
        session_started_at as at_time,
        0 as is_event,
        cast(null as TEXT) as event_id
    from length_splits

    union all

    select
        person_id,
        chain_started_at,
        occurred_at as at_time,
        1 as is_event,
        event_id
    from long_chain_events

),

long_chain_event_sessions as (

    -- each event of a long chain belongs to the latest session start at or before it
    select
        event_id,
        is_event,
        max(case when is_event = 0 then at_time end) over (
            partition by person_id, chain_started_at
            order by at_time, is_event
            rows between unbounded preceding and current row
        ) as session_started_at
    from long_chain_timeline

),

long_chain_sessions as (

    select
        long_chain_events.person_id,
        long_chain_event_sessions.session_started_at as started_at,
        max(occurred_at) as ended_at,
        count(*) as events,
        count(case when is_page_view then 1 end) as page_views,
        count(case when is_product_view then 1 end) as product_views,
        count(case when is_content_page_view then 1 end) as content_page_views,
        count(case when is_add_to_cart then 1 end) as add_to_carts,
        count(case when is_checkout_start then 1 end) as checkout_starts,
        count(case when is_purchase then 1 end) as purchases,
        cast(coalesce(sum(case when is_purchase then revenue end), 0) as decimal(18, 2))
            as revenue,
        min_by(page_url, event_sequence) filter (where is_page_view) as entry_page_url,
        min_by(page_type, event_sequence) filter (where is_page_view) as entry_page_type,
        max_by(page_url, event_sequence) filter (where is_page_view) as exit_page_url,
        max_by(page_type, event_sequence) filter (where is_page_view) as exit_page_type,
        min_by(device_type, event_sequence) filter (where device_type is not null)
            as device_type,
        -- acquisition: the first event of the session that carries a referrer or utm tags
        min_by(utm_source, event_sequence) filter (where coalesce(utm_source, utm_medium, utm_campaign, referrer) is not null) as utm_source,
        min_by(utm_medium, event_sequence) filter (where coalesce(utm_source, utm_medium, utm_campaign, referrer) is not null) as utm_medium,
        min_by(utm_campaign, event_sequence) filter (where coalesce(utm_source, utm_medium, utm_campaign, referrer) is not null)
            as utm_campaign,
        min_by(referrer, event_sequence) filter (where coalesce(utm_source, utm_medium, utm_campaign, referrer) is not null) as referrer
    from long_chain_events
    inner join long_chain_event_sessions
        on long_chain_events.event_id = long_chain_event_sessions.event_id
        and long_chain_event_sessions.is_event = 1
    group by long_chain_events.person_id, long_chain_event_sessions.session_started_at

),

aggregated as (

    select chain_sessions.*
    from chain_sessions
    left join long_chains
        on chain_sessions.person_id = long_chains.person_id
        and chain_sessions.started_at = long_chains.chain_started_at
    where long_chains.person_id is null

    union all

    select * from long_chain_sessions

),

final as (

    select
        md5(cast(person_id || '|' || cast(started_at as TEXT) as TEXT)) as session_id,
        person_id,
        started_at,
        ended_at,
        cast(timezone('UTC', timezone('UTC', started_at)) as date) as session_date,
        
        (date_diff('millisecond', started_at::timestamp, ended_at::timestamp ))
     / 1000.0 as duration_seconds,
        events,
        page_views,
        product_views,
        content_page_views,
        add_to_carts,
        checkout_starts,
        purchases,
        revenue,
        entry_page_url,
        entry_page_type,
        exit_page_url,
        exit_page_type,
        device_type,
        coalesce(
            utm_source,
            nullif(regexp_extract(referrer, '^[a-z]+://(www\.)?([^/:?#]+)', 2), ''),
            'direct'
        ) as acquisition_source,
        utm_source,
        utm_medium,
        utm_campaign,
        referrer,
        events = 1 as is_bounce,
        (
            ended_at
            >= 

    (started_at + cast(10 as bigint) * interval 1 second)
            or page_views >= 2
            or purchases > 0
        ) as is_engaged,
        purchases > 0 as is_converted,
        add_to_carts > 0 as has_cart,
        add_to_carts > 0 and purchases = 0 as is_cart_abandoned
    from aggregated

)

select * from final
;

-- person_consents
create or replace table "scratch"."person_consents" as
with

identifiers as (

    select * from "scratch"."int_identifiers_stitched"

),

statements as (

    select * from "scratch"."int_consent_statements_unioned"

),

persons as (

    select
        person_id,
        max(person_customer_id) is not null as is_customer
    from identifiers
    group by person_id

),

latest_statements as (

    select *
    from statements
    qualify row_number() over (
        partition by person_id, purpose
        order by stated_at desc, is_granted asc, statement_source
    ) = 1

),

consents as (

    select
        persons.person_id,
        persons.is_customer,
        coalesce(
            max(case when latest_statements.purpose = 'analytics' then latest_statements.is_granted end),
            case
                when persons.is_customer then False
                else True
            end
        ) as has_analytics_consent,
        max(case when latest_statements.purpose = 'analytics' then latest_statements.stated_at end)
            as analytics_stated_at,
        coalesce(
            max(case when latest_statements.purpose = 'personalization' then latest_statements.is_granted end),
            case
                when persons.is_customer then False
                else True
            end
        ) as has_personalization_consent,
        max(case when latest_statements.purpose = 'personalization' then latest_statements.stated_at end)
            as personalization_stated_at,
        coalesce(
            max(case when latest_statements.purpose = 'marketing' then latest_statements.is_granted end),
            case
                when persons.is_customer then False
                else False
            end
        ) as has_marketing_consent,
        max(case when latest_statements.purpose = 'marketing' then latest_statements.stated_at end)
            as marketing_stated_at,
        timezone('UTC', cast('2026-11-01T00:00:00+00:00' as timestamptz)) as as_of
    from persons
    left join latest_statements on persons.person_id = latest_statements.person_id
    group by persons.person_id, persons.is_customer

)

select * from consents
;

-- int_events_aggregated_to_persons
create or replace table "scratch"."int_events_aggregated_to_persons" as
with



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
    from "scratch"."int_events_stitched"
    

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

    select person_id, ordered_at from "scratch"."int_orders_deduplicated"
    

),

identifiers_fingerprints as (

    select
        person_id,
        bit_xor(hash(identifier_type, identifier)) as identifiers_fingerprint
    from "scratch"."int_identifiers_stitched"
    group by person_id

),

orders_fingerprints as (

    select person_id, bit_xor(hash(order_id, ordered_at)) as orders_fingerprint
    from "scratch"."int_orders_deduplicated"
    group by person_id

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
        > 

    (added_at + cast(24 as bigint) * interval 1 hour)
            as has_no_order_in_window,
        

    (added_at + cast(24 as bigint) * interval 1 hour)
        <= timezone('UTC', cast('2026-11-01T00:00:00+00:00' as timestamptz)) as is_window_over
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
                    and added_at > 

    (timezone('UTC', cast('2026-11-01T00:00:00+00:00' as timestamptz)) + cast(-30 as bigint) * interval 1 day)
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
        count(case when occurred_at > 

    (timezone('UTC', cast('2026-11-01T00:00:00+00:00' as timestamptz)) + cast(-7 as bigint) * interval 1 day) then 1 end) as events_7d,
        count(case when occurred_at > 

    (timezone('UTC', cast('2026-11-01T00:00:00+00:00' as timestamptz)) + cast(-30 as bigint) * interval 1 day) then 1 end)
            as events_30d,
        count(case when occurred_at > 

    (timezone('UTC', cast('2026-11-01T00:00:00+00:00' as timestamptz)) + cast(-90 as bigint) * interval 1 day) then 1 end)
            as events_90d,
        count(case when occurred_at > 

    (timezone('UTC', cast('2026-11-01T00:00:00+00:00' as timestamptz)) + cast(-1 as bigint) * interval 1 hour) then 1 end)
            as events_last_hour,
        count(case when occurred_at > 

    (timezone('UTC', cast('2026-11-01T00:00:00+00:00' as timestamptz)) + cast(-5 as bigint) * interval 1 minute) then 1 end)
            as events_last_5_minutes,
        count(case when is_page_view then 1 end) as page_views,
        count(case when is_content_page_view then 1 end) as content_page_views,
        count(case when is_product_view then 1 end) as product_views,
        count(
            case when is_product_view and occurred_at > 

    (timezone('UTC', cast('2026-11-01T00:00:00+00:00' as timestamptz)) + cast(-7 as bigint) * interval 1 day) then 1 end
        ) as product_views_7d,
        count(
            case when is_add_to_cart and occurred_at > 

    (timezone('UTC', cast('2026-11-01T00:00:00+00:00' as timestamptz)) + cast(-7 as bigint) * interval 1 day) then 1 end
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
        timezone('UTC', cast('2026-11-01T00:00:00+00:00' as timestamptz)) as as_of,
        (select max(loaded_at) from "scratch"."int_events_stitched") as events_loaded_through,
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
;

-- int_orders_aggregated_to_persons
create or replace table "scratch"."int_orders_aggregated_to_persons" as
with

orders as (

    select * from "scratch"."int_orders_deduplicated"

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
            case when is_completed and ordered_at > 

    (timezone('UTC', cast('2026-11-01T00:00:00+00:00' as timestamptz)) + cast(-7 as bigint) * interval 1 day) then 1 end
        ) as orders_7d,
        count(
            case when is_completed and ordered_at > 

    (timezone('UTC', cast('2026-11-01T00:00:00+00:00' as timestamptz)) + cast(-30 as bigint) * interval 1 day) then 1 end
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
;

-- int_sessions_aggregated_to_persons
create or replace table "scratch"."int_sessions_aggregated_to_persons" as
with



sessions as (

    select * from "scratch"."sessions"
    where
        started_at <= timezone('UTC', cast('2026-11-01T00:00:00+00:00' as timestamptz))

),

identifiers_fingerprints as (

    select
        person_id,
        bit_xor(hash(identifier_type, identifier)) as identifiers_fingerprint
    from "scratch"."int_identifiers_stitched"
    group by person_id

),

aggregated as (

    select
        person_id,
        count(*) as sessions,
        count(case when started_at > 

    (timezone('UTC', cast('2026-11-01T00:00:00+00:00' as timestamptz)) + cast(-7 as bigint) * interval 1 day) then 1 end) as sessions_7d,
        count(case when started_at > 

    (timezone('UTC', cast('2026-11-01T00:00:00+00:00' as timestamptz)) + cast(-30 as bigint) * interval 1 day) then 1 end)
            as sessions_30d,
        count(case when started_at > 

    (timezone('UTC', cast('2026-11-01T00:00:00+00:00' as timestamptz)) + cast(-90 as bigint) * interval 1 day) then 1 end)
            as sessions_90d,
        -- durations are whole milliseconds: summed as integers, the mean does not depend on
        -- the order DuckDB adds them in (a double sum does, in the last bits)
        sum(cast(round(duration_seconds * 1000) as bigint)) / 1000.0 / count(*)
            as avg_session_duration_seconds,
        avg(page_views) as pages_per_session,
        avg(content_page_views) as avg_content_pages_per_session,
        count(case when is_converted then 1 end) as converted_sessions,
        count(case when is_bounce then 1 end) as bounced_sessions,
        count(case when is_engaged then 1 end) as engaged_sessions
    from sessions
    group by person_id

),

final as (

    select
        aggregated.*,
        converted_sessions * 1.0 / sessions as conversion_rate,
        bounced_sessions * 1.0 / sessions as bounce_rate,
        -- what the row was computed from (macros/persons_to_refresh.sql)
        timezone('UTC', cast('2026-11-01T00:00:00+00:00' as timestamptz)) as as_of,
        (select max(loaded_at) from "scratch"."int_events_stitched") as events_loaded_through,
        identifiers_fingerprints.identifiers_fingerprint
    from aggregated
    left join identifiers_fingerprints
        on aggregated.person_id = identifiers_fingerprints.person_id

)

select * from final
;

-- person_features
create or replace table "scratch"."person_features" as
with

identifiers as (

    select * from "scratch"."int_identifiers_stitched"

),

profiled_persons as (

    -- only persons who consent to analytics are profiled
    select person_id from "scratch"."person_consents"
    where has_analytics_consent

),

customers as (

    select * from "scratch"."stg_crm__customers"

),

event_features as (

    select * from "scratch"."int_events_aggregated_to_persons"

),

session_features as (

    select * from "scratch"."int_sessions_aggregated_to_persons"

),

order_features as (

    select * from "scratch"."int_orders_aggregated_to_persons"

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
        anonymous_ids,
        user_ids,
        country,
        loyalty_tier,

        -- lifecycle
        signup_at,
        first_seen_at,
        last_event_at as last_seen_at,
        cast(floor(
            
        (date_diff('second', first_seen_at::timestamp, timezone('UTC', cast('2026-11-01T00:00:00+00:00' as timestamptz))::timestamp ))
     / 86400.0
        ) as integer) as tenure_days,
        cast(floor(
            
        (date_diff('second', last_event_at::timestamp, timezone('UTC', cast('2026-11-01T00:00:00+00:00' as timestamptz))::timestamp ))
     / 86400.0
        ) as integer) as days_since_last_seen,

        -- recency, frequency, monetary value (completed orders, CRM and web without doubles)
        cast(floor(
            
        (date_diff('second', last_completed_ordered_at::timestamp, timezone('UTC', cast('2026-11-01T00:00:00+00:00' as timestamptz))::timestamp ))
     / 86400.0
        ) as integer) as recency_days,
        completed_orders as frequency,
        first_ordered_at,
        last_completed_ordered_at as last_ordered_at,
        cast(lifetime_spend as decimal(18, 2)) as monetary,
        orders,
        completed_orders,
        cast(lifetime_spend as decimal(18, 2)) as lifetime_spend,
        cast(avg_order_value as decimal(18, 2)) as avg_order_value,
        orders_7d,
        orders_30d,
        web_orders,

        -- activity
        events,
        events_7d,
        events_30d,
        events_90d,
        events_last_hour,
        events_last_5_minutes,
        sessions,
        sessions_7d,
        sessions_30d,
        sessions_90d,
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

        timezone('UTC', cast('2026-11-01T00:00:00+00:00' as timestamptz)) as as_of
    from joined

)

select * from final
;
