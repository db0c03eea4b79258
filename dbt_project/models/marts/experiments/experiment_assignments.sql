{#- The variant of every eligible person in every experiment of seed experiments, as the hash
    assigns it (stateless: the online API computes the same from the same definition,
    serving/online/experiments.py). A person is in an experiment when they are not held out
    of personalization, hold one of its eligible segments (any person when none are listed),
    and their bucket in the experiment's layer falls in the experiment's share of the layer
    (experiments of one layer take disjoint shares: nobody is in two of them). -#}

with

experiments as (

    select * from {{ ref('experiments') }}

),

variants as (

    select * from {{ ref('int_experiment_variants_split') }}

),

holdouts as (

    select * from {{ ref('personalization_holdouts') }}

),

memberships as (

    select * from {{ ref('person_segments') }}

),

experiment_segments as (

    select
        experiment_key,
        trim(unnest(string_split(eligible_segments, ';'))) as segment_key
    from experiments
    where coalesce(trim(eligible_segments), '') <> ''

),

eligible_persons as (

    -- experiments open to everyone not held out
    select
        experiments.experiment_key,
        holdouts.person_id
    from experiments
    cross join holdouts
    where
        coalesce(trim(experiments.eligible_segments), '') = ''
        and not holdouts.is_held_out

    union

    -- experiments restricted to segments: persons holding any of them
    select
        experiment_segments.experiment_key,
        memberships.person_id
    from experiment_segments
    inner join memberships on experiment_segments.segment_key = memberships.segment_key
    inner join holdouts on memberships.person_id = holdouts.person_id
    where not holdouts.is_held_out

),

bucketed as (

    select
        eligible_persons.person_id,
        experiments.experiment_key,
        experiments.layer,
        experiments.exposure_source,
        experiments.start_at,
        experiments.end_at,
        {{ experiment_bucket("'layer:' || experiments.layer", 'eligible_persons.person_id') }}
            as layer_bucket,
        {{ experiment_bucket("'experiment:' || experiments.experiment_key", 'eligible_persons.person_id') }}
            as variant_bucket,
        experiments.layer_from_percent * 100 as layer_bucket_from,
        experiments.layer_to_percent * 100 as layer_bucket_to
    from eligible_persons
    inner join experiments on eligible_persons.experiment_key = experiments.experiment_key

),

final as (

    select
        bucketed.person_id,
        bucketed.experiment_key,
        bucketed.layer,
        variants.variant,
        variants.is_control,
        bucketed.exposure_source,
        bucketed.layer_bucket,
        bucketed.variant_bucket,
        {{ as_of_timestamp() }} >= bucketed.start_at
        and {{ as_of_timestamp() }} < bucketed.end_at as is_active,
        {{ as_of_timestamp() }} as as_of
    from bucketed
    inner join variants
        on
            bucketed.experiment_key = variants.experiment_key
            and bucketed.variant_bucket >= variants.bucket_from
            and bucketed.variant_bucket < variants.bucket_to
    where
        bucketed.layer_bucket >= bucketed.layer_bucket_from
        and bucketed.layer_bucket < bucketed.layer_bucket_to

)

select * from final
