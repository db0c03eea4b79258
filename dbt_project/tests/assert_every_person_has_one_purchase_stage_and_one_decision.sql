{{ config(meta={'dagster': {'ref': {'name': 'content_decisions'}}}) }}

-- Every person holds exactly one purchase stage and gets exactly one content decision.

with

features as (

    select person_id from {{ ref('person_features') }}

),

stages as (

    select
        person_id,
        count(*) as stages
    from {{ ref('person_segments') }}
    where segment_group = 'purchase_stage'
    group by person_id

),

decisions as (

    select
        person_id,
        count(*) as decisions
    from {{ ref('content_decisions') }}
    group by person_id

)

select
    features.person_id,
    coalesce(stages.stages, 0) as stages,
    coalesce(decisions.decisions, 0) as decisions
from features
left join stages on features.person_id = stages.person_id
left join decisions on features.person_id = decisions.person_id
where coalesce(stages.stages, 0) <> 1 or coalesce(decisions.decisions, 0) <> 1
