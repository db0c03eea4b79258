{#- Which persons an incremental run of `int_events_sessionized` must re-sessionize, and from when.

    Returns a query with one row per person to rebuild: (person_id, reprocess_from), where
    reprocess_from is the instant from which the person's sessions are deleted and rebuilt, or
    null to rebuild all of the person's sessions. The model's pre-hook computes it once,
    before anything is written (save_sessions_reprocess_windows); the model selects the events to
    sessionize with it and the incremental strategy `session_reprocess` deletes with it.

    Why this equals a full rebuild:
    - window_start is the latest session end minus var('session_lookback_days'). A person with
      sessions reaching window_start minus the inactivity timeout is reopened from the start of
      the first such session (a late event may merge into it); otherwise from window_start.
    - Everything before reprocess_from is kept only if it is complete: the events the kept
      sessions hold must equal the person's events before reprocess_from. A late event older than
      the lookback, an identity merge (another identifier's history joins the person), a changed
      bot pattern or an earlier as_of all break that count, and the person is rebuilt in full.
    - The first event at or after reprocess_from starts a session in a full rebuild too: it
      follows a kept session by more than the timeout, or it starts an existing session whose
      predecessor is unchanged (so a max-length or midnight split falls on the same event).
    - Person ids that no longer exist (merged into another person) have no events: all their
      sessions are deleted.
-#}
{% macro sessions_reprocess_windows(sessions_relation, events_relation) -%}

{%- set timeout_seconds = var('session_inactivity_timeout_minutes') * 60 -%}

with

kept_sessions as (

    select person_id, started_at, ended_at, events
    from {{ sessions_relation }}

),

current_events as (

    select person_id, occurred_at
    from {{ events_relation }}

),

lookback_window as (

    select
        {{ dbt.dateadd('day', -1 * var('session_lookback_days'), 'max(ended_at)') }}
            as window_start
    from kept_sessions

),

reopened_sessions as (

    -- sessions a new event at or after window_start could still join
    select
        kept_sessions.person_id,
        min(kept_sessions.started_at) as first_reopened_started_at
    from kept_sessions
    cross join lookback_window
    where
        kept_sessions.ended_at
        >= {{ dbt.dateadd('second', -1 * timeout_seconds, 'lookback_window.window_start') }}
    group by kept_sessions.person_id

),

reopened_cutoffs as (

    select
        reopened_sessions.person_id,
        case
            when reopened_sessions.first_reopened_started_at < lookback_window.window_start
                then reopened_sessions.first_reopened_started_at
            else lookback_window.window_start
        end as reprocess_from
    from reopened_sessions
    cross join lookback_window

),

current_counts as (

    -- one pass over the events: how many are before the person's cutoff, and the latest
    select
        current_events.person_id,
        count(
            case
                when
                    current_events.occurred_at
                    < coalesce(reopened_cutoffs.reprocess_from, lookback_window.window_start)
                    then 1
            end
        ) as events_before_cutoff,
        max(current_events.occurred_at) as last_event_at
    from current_events
    cross join lookback_window
    left join reopened_cutoffs on current_events.person_id = reopened_cutoffs.person_id
    group by current_events.person_id

),

kept_counts as (

    select
        kept_sessions.person_id,
        sum(
            case
                when
                    kept_sessions.started_at
                    < coalesce(reopened_cutoffs.reprocess_from, lookback_window.window_start)
                    then kept_sessions.events
                else 0
            end
        ) as events_before_cutoff
    from kept_sessions
    cross join lookback_window
    left join reopened_cutoffs on kept_sessions.person_id = reopened_cutoffs.person_id
    group by kept_sessions.person_id

),

compared as (

    select
        coalesce(kept.person_id, found.person_id) as person_id,
        coalesce(kept.events_before_cutoff, 0)
        <> coalesce(found.events_before_cutoff, 0) as is_incomplete,
        found.last_event_at
    from kept_counts as kept
    full outer join current_counts as found on kept.person_id = found.person_id

),

windows as (

    select
        compared.person_id,
        -- null: rebuild everything of the person (also when the table is empty)
        case
            when not compared.is_incomplete
                then coalesce(reopened_cutoffs.reprocess_from, lookback_window.window_start)
        end as reprocess_from
    from compared
    cross join lookback_window
    left join reopened_cutoffs on compared.person_id = reopened_cutoffs.person_id
    where
        lookback_window.window_start is null
        or compared.is_incomplete
        or reopened_cutoffs.person_id is not null
        or compared.last_event_at >= lookback_window.window_start

)

select * from windows

{%- endmacro %}


{#- Where an incremental run of `int_events_sessionized` keeps its reprocess windows: a temporary table of the
    model's connection, computed once by the pre-hook (it scans every event and session) and read
    by both the model's query and the strategy's delete; the post-hook drops it. -#}
{% macro sessions_reprocess_windows_relation() -%}
    temp.main.sessions_reprocess_windows
{%- endmacro %}

{% macro save_sessions_reprocess_windows() -%}
create or replace temporary table sessions_reprocess_windows as
{{ sessions_reprocess_windows(this, ref('int_events_stitched')) }}
{%- endmacro %}
