{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='pair_key',
        on_schema_change='fail',
    )
}}

{#- Every distinct (anonymous id, user id) combination seen on a staged event, with the first
    time it was seen: the edges and nodes of identity stitching (int_identifiers_stitched keeps
    the pairs first seen at or before as_of, which is the same as the pairs of the events at or
    before as_of).

    Incremental, so that a sensor run reads only its new events, not every staged event: a run
    reads the staged events loaded after the latest load this table has seen
    (events_loaded_through) and merges their pairs in, keeping the earlier first_seen_at. It does
    not depend on as_of, so a moving as_of never invalidates it. Staged events are only appended
    (erasure deletes the subject's rows here too, by pseudonym); a change of the bot pattern
    needs --full-refresh, as for staging.
-#}

with

new_events as (

    select anonymous_id, user_id, occurred_at, loaded_at
    from {{ ref('stg_clickstream__events') }}
    {% if is_incremental() %}
    where
        loaded_at > (
            select coalesce(max(events_loaded_through), '-infinity'::timestamp) from {{ this }}
        )
    {% endif %}

),

seen as (

    select
        anonymous_id,
        user_id,
        min(occurred_at) as first_seen_at
    from new_events
    group by anonymous_id, user_id

),

{% if is_incremental() %}

merged as (

    -- a pair seen before keeps its earlier first_seen_at (a late event may be earlier still)
    select
        seen.anonymous_id,
        seen.user_id,
        least(seen.first_seen_at, coalesce(stored.first_seen_at, seen.first_seen_at))
            as first_seen_at
    from seen
    left join {{ this }} as stored
        on
            stored.anonymous_id is not distinct from seen.anonymous_id
            and stored.user_id is not distinct from seen.user_id

),

{% else %}

merged as (

    select * from seen

),

{% endif %}

final as (

    select
        -- either id may be null: the key names the pair, nulls included
        {{ dbt.hash(dbt.concat([
            "coalesce(anonymous_id, '')", "'|'", "coalesce(user_id, '')"
        ])) }} as pair_key,
        anonymous_id,
        user_id,
        first_seen_at,
        (select max(loaded_at) from new_events) as events_loaded_through
    from merged

)

select * from final
