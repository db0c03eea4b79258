{#- The catalogue of every segment a person can hold: rule-based segments (seed segments) and RFM
    segments (seed rfm_segments), with whether the segment's group is exclusive (a person holds
    at most one segment of it). -#}

with

segments as (

    select * from {{ ref('segments') }}

),

rfm_segments as (

    select * from {{ ref('rfm_segments') }}

),

rule_segments as (

    select
        segment_key,
        segment_name,
        segment_group,
        -- groups whose segments have priorities pick one segment per person
        max(case when priority is not null then 1 else 0 end) over (partition by segment_group) = 1
            as is_exclusive_group,
        description
    from segments

),

rfm_segment_names as (

    select
        segment_key,
        min(segment_name) as segment_name,
        'rfm' as segment_group,
        true as is_exclusive_group,
        min(description) as description
    from rfm_segments
    group by segment_key

),

unioned as (

    select * from rule_segments
    union all
    select * from rfm_segment_names

)

select * from unioned
