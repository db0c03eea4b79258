{{ config(meta={'dagster': {'ref': {'name': 'sessions'}}}) }}

-- The sessions of every person hold exactly the person's events (nothing lost or counted twice
-- by incremental runs), and a person's sessions never overlap.

with

sessions as (

    select * from {{ ref('sessions') }}

),

events as (

    select * from {{ ref('int_events_stitched') }}

),

session_events as (

    select
        person_id,
        sum(event_count) as event_count
    from sessions
    group by person_id

),

person_events as (

    select
        person_id,
        count(*) as event_count
    from events
    group by person_id

),

miscounted as (

    select
        coalesce(session_events.person_id, person_events.person_id) as person_id,
        'events: ' || cast(coalesce(session_events.event_count, 0) as varchar) || ' in sessions, '
        || cast(coalesce(person_events.event_count, 0) as varchar) || ' stitched' as problem
    from session_events
    full outer join person_events on session_events.person_id = person_events.person_id
    where coalesce(session_events.event_count, 0) <> coalesce(person_events.event_count, 0)

),

ordered_sessions as (

    select
        person_id,
        session_id,
        started_at,
        lag(ended_at) over (partition by person_id order by started_at) as previous_ended_at
    from sessions

),

overlapping as (

    select
        person_id,
        'session ' || session_id || ' starts before the previous one ended' as problem
    from ordered_sessions
    where started_at <= previous_ended_at

)

select * from miscounted
union all
select * from overlapping
