{{
    config(
        materialized='incremental',
        incremental_strategy='session_reprocess',
        unique_key='session_id',
        on_schema_change='fail',
        pre_hook="{% if is_incremental() %}{{ save_sessions_reprocess_windows() }}{% endif %}",
        post_hook="drop table if exists {{ sessions_reprocess_windows_relation() }}",
    )
}}

{#- Sessions of every person, incremental with exact late-event handling.

    Rules (vars in dbt_project.yml): a gap of at least session_inactivity_timeout_minutes starts
    a new session; a session that reaches session_max_length_hours ends and the next event starts
    a new one; optionally a new session starts at midnight in reporting_time_zone. Events are
    ordered by (occurred_at, event_id).

    Shape of the query (it runs on every event at 10M-event scale): two window passes over each
    person's timeline find the chains of activity (events closer than the timeout); they are
    aggregated in timeline order. Chains that reach the maximum length (rare, bots are gone) are
    cut into sessions separately, from their own events, and replace their chain rows.

    Incremental runs rebuild only the persons and periods macro sessions_reprocess_windows
    selects (recent activity within session_lookback_days, plus any person whose older history
    changed); the result always equals a full rebuild. The pre-hook computes those windows once
    into a temporary table that both this query and the delete of the strategy read (dbt unit
    tests run no hooks: they set var sessions_reprocess_windows_from_pre_hook to false, and the
    query computes the windows itself). session_id is a hash of person and start,
    so the same session keeps its id across runs.
-#}

{%- set timeout_seconds = var('session_inactivity_timeout_minutes') * 60 -%}
{%- set max_length_seconds = var('session_max_length_hours') * 3600 -%}
{%- set time_zone = var('reporting_time_zone') -%}
{%- set has_acquisition = 'coalesce(utm_source, utm_medium, utm_campaign, referrer) is not null' -%}

{#- What a session is made of, aggregated per session key (used for chains and long chains). -#}
{%- set session_measures -%}
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
        min_by(utm_source, event_sequence) filter (where {{ has_acquisition }}) as utm_source,
        min_by(utm_medium, event_sequence) filter (where {{ has_acquisition }}) as utm_medium,
        min_by(utm_campaign, event_sequence) filter (where {{ has_acquisition }})
            as utm_campaign,
        min_by(referrer, event_sequence) filter (where {{ has_acquisition }}) as referrer
{%- endset -%}

with recursive

events as (

    select * from {{ ref('int_events_stitched') }}

),

long_chain_event_source as (

    select * from {{ ref('int_events_stitched') }}

),

{% if is_incremental() %}

reprocess_windows as (

    {% if var('sessions_reprocess_windows_from_pre_hook', true) -%}
    select * from {{ sessions_reprocess_windows_relation() }}
    {%- else -%}
    {{ sessions_reprocess_windows(this, ref('int_events_stitched')) }}
    {%- endif %}

),

events_to_sessionize as (

    select events.*
    from events
    inner join reprocess_windows on events.person_id = reprocess_windows.person_id
    where
        reprocess_windows.reprocess_from is null
        or events.occurred_at >= reprocess_windows.reprocess_from

),

{% else %}

events_to_sessionize as (

    select * from events

),

{% endif %}

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
            occurred_at >= {{ dbt.dateadd('second', timeout_seconds, 'previous_occurred_at') }}
            {%- if var('session_split_at_midnight') %}
            or cast({{ local_timestamp('occurred_at', time_zone) }} as date)
            <> cast({{ local_timestamp('previous_occurred_at', time_zone) }} as date)
            {%- endif %},
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
        {{ session_measures }}
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
    where ended_at >= {{ dbt.dateadd('second', max_length_seconds, 'started_at') }}

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
        {{ dbt.dateadd('second', max_length_seconds, 'occurred_at') }} as at_time,
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
        cast(null as {{ dbt.type_string() }}) as event_id
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
        {{ session_measures }}
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
        {{ dbt.hash(dbt.concat([
            'person_id', "'|'", 'cast(started_at as ' ~ dbt.type_string() ~ ')'
        ])) }} as session_id,
        person_id,
        started_at,
        ended_at,
        cast({{ local_timestamp('started_at', time_zone) }} as date) as session_date,
        {{ dbt.datediff('started_at', 'ended_at', 'millisecond') }} / 1000.0 as duration_seconds,
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
            >= {{ dbt.dateadd('second', var('engaged_session_min_seconds'), 'started_at') }}
            or page_views >= {{ var('engaged_session_min_page_views') }}
            or purchases > 0
        ) as is_engaged,
        purchases > 0 as is_converted,
        add_to_carts > 0 as has_cart,
        add_to_carts > 0 and purchases = 0 as is_cart_abandoned
    from aggregated

)

select * from final
