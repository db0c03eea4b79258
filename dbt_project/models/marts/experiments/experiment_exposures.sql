{#- One row per exposed person and experiment: the first exposure (time and variant) and how
    often the person was exposed. Analysis counts a person from the first exposure on, in the
    variant of that exposure (intention to treat); persons who later reported another variant
    are flagged (has_other_variants) and stay in their first variant. Only persons of
    person_features (who consent to analytics) are counted.

    Exposures: every exposure of a person to an experiment of seed experiments, at or before as_of and
    within the experiment's start_at .. end_at, from the two sources the seed's
    exposure_source names:

    - events: client-side experiments report what the person saw: events of role
      experiment_exposure (experiment_viewed, Segment's Experiment Viewed) and any other event
      that carries both an experiment_id and an experiment_variant (properties); only variants
      the seed lists count;
    - assignment: server-side decisions (the content decision's rendering): the person is
      exposed from their first event at or after start_at, in their assigned variant
      (experiment_assignments).
-#}

with

experiments as (

    select * from {{ ref('experiments') }}

),

variants as (

    select * from {{ ref('int_experiment_variants_split') }}

),

staged_events as (

    select * from {{ ref('stg_clickstream__events') }}
    where experiment_id is not null

),

stitched_events as (

    select * from {{ ref('int_events_stitched') }}

),

assignments as (

    select * from {{ ref('experiment_assignments') }}

),

profiled_persons as (

    -- only persons who may be analysed (analytics consent): those of person_features
    select person_id from {{ ref('person_features') }}

),

reported_exposures as (

    select
        stitched_events.person_id,
        staged_events.experiment_id as experiment_key,
        staged_events.experiment_variant as variant,
        stitched_events.occurred_at as exposed_at,
        'events' as exposure_source
    from staged_events
    inner join stitched_events on staged_events.event_id = stitched_events.event_id
    inner join experiments
        on
            staged_events.experiment_id = experiments.experiment_key
            and experiments.exposure_source = 'events'
    inner join variants
        on
            staged_events.experiment_id = variants.experiment_key
            and staged_events.experiment_variant = variants.variant
    where
        stitched_events.event_role = 'experiment_exposure'
        or staged_events.experiment_variant is not null

),

first_events_after_start as (

    select
        assignments.person_id,
        assignments.experiment_key,
        assignments.variant,
        min(stitched_events.occurred_at) as exposed_at
    from assignments
    inner join experiments
        on
            assignments.experiment_key = experiments.experiment_key
            and experiments.exposure_source = 'assignment'
    inner join stitched_events
        on
            assignments.person_id = stitched_events.person_id
            and stitched_events.occurred_at >= experiments.start_at
    group by 1, 2, 3

),

assigned_exposures as (

    select
        person_id,
        experiment_key,
        variant,
        exposed_at,
        'assignment' as exposure_source
    from first_events_after_start

),

unioned as (

    select * from reported_exposures
    union all
    select * from assigned_exposures

),

exposures as (

    select unioned.*
    from unioned
    inner join experiments on unioned.experiment_key = experiments.experiment_key
    where
        unioned.exposed_at >= experiments.start_at
        and unioned.exposed_at < experiments.end_at
        and unioned.exposed_at <= {{ as_of_timestamp() }}
        and unioned.person_id in (select person_id from profiled_persons)

),

per_person as (

    -- one pass: the first exposure (earliest, ties to the smallest variant) and the count
    select
        person_id,
        experiment_key,
        min({'exposed_at': exposed_at, 'variant': variant, 'source': exposure_source})
            as first_exposure,
        count(*) as exposure_count,
        min(variant) <> max(variant) as has_other_variants
    from exposures
    group by 1, 2

),

final as (

    select
        person_id,
        experiment_key,
        first_exposure.variant as variant,
        first_exposure.exposed_at as first_exposed_at,
        first_exposure.source as exposure_source,
        exposure_count,
        has_other_variants,
        {{ as_of_timestamp() }} as as_of
    from per_person

)

select * from final
