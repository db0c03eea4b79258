{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='person_id',
        on_schema_change='fail',
        post_hook="{{ persons_aggregate_post_hook() }}",
    )
}}

{#- Session-based features per person, as of var('as_of').

    Incremental by person (macros/persons_to_refresh.sql): a run recomputes the persons with new
    events or changed identifiers, those with events since the last run's as_of, and those
    with a session crossing the edge of a window (7, 30
    and 90 days) since the last run's as_of. The result equals a full rebuild
    (tests/dbt/test_dbt_sessions.py). -#}

{%- set as_of = as_of_timestamp() -%}

with

{% if is_incremental() %}

persons_to_refresh as (

    {#- an event after the stored as_of can also extend a session that started before it -#}
    {{ persons_to_refresh([
        (ref('int_events_sessionized'), 'started_at', [0, 7 * 86400, 30 * 86400, 90 * 86400]),
        (ref('int_events_stitched'), 'occurred_at', [0]),
    ]) }}

),

{% endif %}

sessions as (

    select * from {{ ref('int_events_sessionized') }}
    where
        started_at <= {{ as_of }}
        {%- if is_incremental() %}
        and person_id in (select person_id from persons_to_refresh)
        {%- endif %}

),

identifiers_fingerprints as (

    {{ identifiers_fingerprints() }}

),

aggregated as (

    select
        person_id,
        count(*) as sessions,
        count(case when started_at > {{ dbt.dateadd('day', -7, as_of) }} then 1 end) as sessions_7d,
        count(case when started_at > {{ dbt.dateadd('day', -30, as_of) }} then 1 end)
            as sessions_30d,
        count(case when started_at > {{ dbt.dateadd('day', -90, as_of) }} then 1 end)
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
        {{ as_of }} as as_of,
        (select max(loaded_at) from {{ ref('int_events_stitched') }}) as events_loaded_through,
        identifiers_fingerprints.identifiers_fingerprint
    from aggregated
    left join identifiers_fingerprints
        on aggregated.person_id = identifiers_fingerprints.person_id

)

select * from final
