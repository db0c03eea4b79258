{#- Time-split evaluation data of the recommendation models (not meant for reports): the
    interactions as they were at the cutoff, var('recommendation_holdout_days') before as_of
    (what a model trains on), and which products each person interacted with after the cutoff,
    up to as_of (what it should have recommended). -#}

{%- set cutoff -%}
    ({{ as_of_timestamp() }} - to_days({{ var('recommendation_holdout_days') }}))
{%- endset %}

with

train as (

    {{ person_item_interaction_rows(cutoff) }}

),

holdout as (

    select
        events.person_id,
        events.product_id
    from {{ ref('int_events_stitched') }} as events
    inner join {{ ref('recommendation_event_weights') }} as weights
        on events.event_role = weights.event_role
    where
        events.product_id is not null
        and events.occurred_at > {{ cutoff }}
        and events.occurred_at <= {{ as_of_timestamp() }}
        and weights.weight > 0
        and events.person_id in (
            select person_id from {{ ref('person_consents') }} where has_analytics_consent
        )
    group by events.person_id, events.product_id

),

final as (

    select
        coalesce(train.person_id, holdout.person_id) as person_id,
        coalesce(train.product_id, holdout.product_id) as product_id,
        coalesce(train.views, 0) as views,
        coalesce(train.add_to_carts, 0) as add_to_carts,
        coalesce(train.purchases, 0) as purchases,
        coalesce(train.interaction_weight, 0.0) as interaction_weight,
        holdout.person_id is not null as is_holdout_target,
        {{ cutoff }} as cutoff_at,
        {{ as_of_timestamp() }} as as_of
    from train
    full outer join holdout
        on train.person_id = holdout.person_id and train.product_id = holdout.product_id

)

select * from final
