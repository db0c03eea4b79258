{#- Size of every segment as of as_of (empty segments included), with a flag for segments
    smaller than var('segment_min_size'): too small to act on (over-segmentation). -#}

with

catalog as (

    select * from {{ ref('int_segments_unioned') }}

),

memberships as (

    select * from {{ ref('person_segments') }}

),

features as (

    select * from {{ ref('person_features') }}

),

segment_counts as (

    select
        segment_key,
        count(*) as persons
    from memberships
    group by segment_key

),

population as (

    select count(*) as persons
    from features

),

final as (

    select
        catalog.segment_group,
        catalog.segment_key,
        catalog.segment_name,
        coalesce(segment_counts.persons, 0) as person_count,
        case
            when population.persons > 0
                then coalesce(segment_counts.persons, 0) * 1.0 / population.persons
        end as share_of_persons,
        {{ var('segment_min_size') }} as min_size,
        coalesce(segment_counts.persons, 0) < {{ var('segment_min_size') }} as is_below_min_size,
        {{ as_of_timestamp() }} as as_of
    from catalog
    cross join population
    left join segment_counts on catalog.segment_key = segment_counts.segment_key

)

select * from final
