{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='membership_id',
        on_schema_change='fail',
    )
}}

{#- When each person entered and left each segment. Every run compares the segments held at its
    as_of (person_segments) with the open memberships: new ones are entered at as_of, ended ones
    are closed at as_of. History only moves forward: a run whose as_of is not later than the last
    recorded change (a re-run, or a backtest at an earlier instant) changes nothing. History
    starts at the first run. -#}

{%- set as_of = as_of_timestamp() -%}

with

current_segments as (

    select
        person_id,
        segment_group,
        segment_key
    from {{ ref('person_segments') }}

),

{% if is_incremental() %}

recorded as (

    select * from {{ this }}

),

open_memberships as (

    select * from recorded
    where left_at is null

),

last_change as (

    select
        coalesce(
            case when max(left_at) > max(entered_at) then max(left_at) else max(entered_at) end,
            cast('1900-01-01' as timestamp)
        ) as changed_at
    from recorded

),

entered as (

    select
        current_segments.person_id,
        current_segments.segment_group,
        current_segments.segment_key,
        {{ as_of }} as entered_at,
        cast(null as timestamp) as left_at
    from current_segments
    left join open_memberships
        on current_segments.person_id = open_memberships.person_id
        and current_segments.segment_key = open_memberships.segment_key
    where open_memberships.person_id is null

),

ended as (

    select
        open_memberships.person_id,
        open_memberships.segment_group,
        open_memberships.segment_key,
        open_memberships.entered_at,
        {{ as_of }} as left_at
    from open_memberships
    left join current_segments
        on open_memberships.person_id = current_segments.person_id
        and open_memberships.segment_key = current_segments.segment_key
    where current_segments.person_id is null

),

changes as (

    select entered.* from entered
    cross join last_change
    where {{ as_of }} > last_change.changed_at

    union all

    select ended.* from ended
    cross join last_change
    where {{ as_of }} > last_change.changed_at

),

{% else %}

changes as (

    select
        person_id,
        segment_group,
        segment_key,
        {{ as_of }} as entered_at,
        cast(null as timestamp) as left_at
    from current_segments

),

{% endif %}

final as (

    select
        {{ dbt.hash(dbt.concat([
            'person_id', "'|'", 'segment_key', "'|'",
            'cast(entered_at as ' ~ dbt.type_string() ~ ')'
        ])) }} as membership_id,
        person_id,
        segment_group,
        segment_key,
        entered_at,
        left_at,
        left_at is null as is_current
    from changes

)

select * from final
