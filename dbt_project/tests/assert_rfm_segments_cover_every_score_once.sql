-- Every (R score, FM score) cell from 1 to 5 maps to exactly one row of seed rfm_segments.

with

rfm_segments as (

    select * from {{ ref('rfm_segments') }}

),

scores as (

    select range as score from range(1, 6)

),

cells as (

    select
        r.score as r_score,
        fm.score as fm_score
    from scores as r
    cross join scores as fm

),

matches as (

    select
        cells.r_score,
        cells.fm_score,
        count(rfm_segments.segment_key) as segments
    from cells
    left join rfm_segments
        on cells.r_score between rfm_segments.r_score_min and rfm_segments.r_score_max
        and cells.fm_score between rfm_segments.fm_score_min and rfm_segments.fm_score_max
    group by cells.r_score, cells.fm_score

)

select * from matches
where segments <> 1
