{#- RFM scores and the named RFM segment of every person with a completed order, as of as_of.

    Scores are quintiles 1-5 by percent rank among buyers (ties share a score; 5 is best: most
    recent, most orders, most spend). The FM score is the mean of F and M rounded half up; the
    segment comes from seed rfm_segments (ranges of R and FM scores).
-#}

with

features as (

    select * from {{ ref('person_features') }}
    where completed_orders > 0

),

rfm_segments as (

    select * from {{ ref('rfm_segments') }}

),

ranked as (

    select
        person_id,
        recency_days,
        completed_orders,
        lifetime_spend,
        percent_rank() over (order by last_ordered_at) as recency_rank,
        percent_rank() over (order by completed_orders) as frequency_rank,
        percent_rank() over (order by lifetime_spend) as monetary_rank,
        as_of
    from features

),

scored as (

    select
        *,
        least(5, 1 + cast(floor(5 * recency_rank) as integer)) as r_score,
        least(5, 1 + cast(floor(5 * frequency_rank) as integer)) as f_score,
        least(5, 1 + cast(floor(5 * monetary_rank) as integer)) as m_score
    from ranked

),

with_fm as (

    select
        *,
        cast(floor((f_score + m_score) / 2.0 + 0.5) as integer) as fm_score
    from scored

),

segmented as (

    select
        with_fm.person_id,
        with_fm.recency_days,
        with_fm.completed_orders,
        with_fm.lifetime_spend,
        with_fm.r_score,
        with_fm.f_score,
        with_fm.m_score,
        with_fm.fm_score,
        cast(with_fm.r_score as {{ dbt.type_string() }})
        || cast(with_fm.f_score as {{ dbt.type_string() }})
        || cast(with_fm.m_score as {{ dbt.type_string() }}) as rfm_cell,
        rfm_segments.segment_key as rfm_segment_key,
        rfm_segments.segment_name as rfm_segment_name,
        with_fm.as_of
    from with_fm
    left join rfm_segments
        on with_fm.r_score between rfm_segments.r_score_min and rfm_segments.r_score_max
        and with_fm.fm_score between rfm_segments.fm_score_min and rfm_segments.fm_score_max

)

select * from segmented
