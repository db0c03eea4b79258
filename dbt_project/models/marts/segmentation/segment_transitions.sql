{#- How many persons moved between segments at each recorded change (each run's as_of).

    In exclusive groups (purchase stage, RFM) leaving one segment and entering another at the same
    instant is one transition from -> to. Otherwise entering has no from_segment_key and leaving
    has no to_segment_key (micro-segments, or joining and leaving a group).
-#}

with

history as (

    select * from {{ ref('segment_membership_history') }}

),

catalog as (

    select * from {{ ref('int_segments_unioned') }}

),

entries as (

    select
        history.person_id,
        history.segment_group,
        history.segment_key,
        history.entered_at as changed_at,
        catalog.is_exclusive_group
    from history
    inner join catalog on history.segment_key = catalog.segment_key

),

exits as (

    select
        history.person_id,
        history.segment_group,
        history.segment_key,
        history.left_at as changed_at,
        catalog.is_exclusive_group
    from history
    inner join catalog on history.segment_key = catalog.segment_key
    where history.left_at is not null

),

exclusive_exits as (

    select * from exits
    where is_exclusive_group

),

exclusive_entries as (

    select * from entries
    where is_exclusive_group

),

exclusive_moves as (

    select
        coalesce(exits.changed_at, entries.changed_at) as changed_at,
        coalesce(exits.segment_group, entries.segment_group) as segment_group,
        exits.segment_key as from_segment_key,
        entries.segment_key as to_segment_key,
        coalesce(exits.person_id, entries.person_id) as person_id
    from exclusive_exits as exits
    full outer join exclusive_entries as entries
        on exits.person_id = entries.person_id
        and exits.segment_group = entries.segment_group
        and exits.changed_at = entries.changed_at

),

other_moves as (

    select
        changed_at,
        segment_group,
        cast(null as {{ dbt.type_string() }}) as from_segment_key,
        segment_key as to_segment_key,
        person_id
    from entries
    where not is_exclusive_group

    union all

    select
        changed_at,
        segment_group,
        segment_key as from_segment_key,
        cast(null as {{ dbt.type_string() }}) as to_segment_key,
        person_id
    from exits
    where not is_exclusive_group

),

moves as (

    select * from exclusive_moves
    union all
    select * from other_moves

),

final as (

    select
        changed_at,
        segment_group,
        from_segment_key,
        to_segment_key,
        count(*) as person_count
    from moves
    group by changed_at, segment_group, from_segment_key, to_segment_key

)

select * from final
