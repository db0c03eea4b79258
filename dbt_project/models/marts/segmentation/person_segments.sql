{#- Every segment each person holds, as of as_of: micro-segments (several per person), exactly one
    purchase stage, the RFM segment of buyers, and churn_at_risk for persons the current churn
    model scores at or above the at-risk threshold (ml/churn_scores; none before a first model),
    and has_recommendations for persons with a recommendation from their own behaviour
    (ml/person_recommendations; none before a first recommendation model).

    Rules live in seeds: segments (names, groups, priorities) and segment_rules (conditions). A
    condition compares one numeric column of person_features with a threshold; conditions with
    the same (segment_key, rule_id) must all hold, and a segment holds when any of its rules does.
    In a group with priorities (purchase_stage) a person holds only the matching segment with the
    lowest priority.
-#}

with

features as (

    select * from {{ ref('person_features') }}

),

segments as (

    select * from {{ ref('segments') }}

),

segment_rules as (

    select * from {{ ref('segment_rules') }}

),

rfm_scores as (

    select * from {{ ref('person_rfm_scores') }}

),

churn_scores as (

    select * from {{ ref('stg_ml__churn_scores') }}

),

recommendations as (

    select * from {{ ref('stg_ml__person_recommendations') }}

),

condition_values as (

    select
        features.person_id,
        segment_rules.segment_key,
        segment_rules.rule_id,
        segment_rules.operator,
        segment_rules.threshold,
        {{ feature_value('person_features', 'features', 'segment_rules.feature') }} as feature_value
    from features
    cross join segment_rules

),

conditions as (

    select
        person_id,
        segment_key,
        rule_id,
        coalesce(
            case operator
                when '>' then feature_value > threshold
                when '>=' then feature_value >= threshold
                when '<' then feature_value < threshold
                when '<=' then feature_value <= threshold
                when '=' then feature_value = threshold
                when '!=' then feature_value <> threshold
            end,
            false
        ) as is_met
    from condition_values

),

rules_met as (

    select
        person_id,
        segment_key,
        rule_id
    from conditions
    group by person_id, segment_key, rule_id
    having min(case when is_met then 1 else 0 end) = 1

),

segments_met as (

    select distinct
        rules_met.person_id,
        segments.segment_group,
        segments.segment_key,
        segments.segment_name,
        segments.priority
    from rules_met
    inner join segments on rules_met.segment_key = segments.segment_key

),

rule_segments as (

    -- groups with priorities are exclusive: the matching segment with the lowest priority wins
    select
        person_id,
        segment_group,
        segment_key,
        segment_name
    from segments_met
    qualify
        priority is null
        or row_number() over (
            partition by person_id, segment_group order by priority, segment_key
        ) = 1

),

rfm_segments as (

    select
        person_id,
        'rfm' as segment_group,
        rfm_segment_key as segment_key,
        rfm_segment_name as segment_name
    from rfm_scores
    where rfm_segment_key is not null

),

at_risk_segments as (

    -- only scores of persons that still exist (identity merges can retire a person id)
    select
        churn_scores.person_id,
        segments.segment_group,
        segments.segment_key,
        segments.segment_name
    from churn_scores
    inner join features on churn_scores.person_id = features.person_id
    inner join segments on segments.segment_key = 'churn_at_risk'
    where churn_scores.is_at_risk

),

recommendation_segments as (

    -- persons with a recommendation from their own behaviour (not a popularity fallback)
    select distinct
        recommendations.person_id,
        segments.segment_group,
        segments.segment_key,
        segments.segment_name
    from recommendations
    inner join features on recommendations.person_id = features.person_id
    inner join segments on segments.segment_key = 'has_recommendations'
    where recommendations.is_behavioural

),

unioned as (

    select * from rule_segments
    union all
    select * from rfm_segments
    union all
    select * from at_risk_segments
    union all
    select * from recommendation_segments

),

final as (

    select
        person_id,
        segment_group,
        segment_key,
        segment_name,
        {{ as_of_timestamp() }} as as_of
    from unioned

)

select * from final
