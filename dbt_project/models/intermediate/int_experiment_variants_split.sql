{#- One row per variant of each experiment of seed experiments, with the range of variant buckets
    (0..9999, macros/experiment_bucket.sql) it takes: variants take consecutive ranges in their
    order in the seed, each in proportion to its integer weight; the first variant is the
    control. serving/online/experiments.py computes the same ranges. -#}

with

experiments as (

    select * from {{ ref('experiments') }}

),

split as (

    select
        experiment_key,
        unnest(string_split(variants, ';')) as variant_spec,
        unnest(range(1, len(string_split(variants, ';')) + 1)) as variant_position
    from experiments

),

parsed as (

    select
        experiment_key,
        cast(variant_position as integer) as variant_position,
        trim(split_part(variant_spec, ':', 1)) as variant,
        cast(trim(split_part(variant_spec, ':', 2)) as integer) as weight
    from split

),

cumulated as (

    select
        *,
        sum(weight) over (
            partition by experiment_key order by variant_position
            rows between unbounded preceding and current row
        ) as cumulative_weight,
        sum(weight) over (partition by experiment_key) as total_weight
    from parsed

),

final as (

    select
        experiment_key,
        variant_position,
        variant,
        weight,
        cast(weight as double) / total_weight as expected_share,
        cast((cumulative_weight - weight) * 10000 // total_weight as integer) as bucket_from,
        cast(cumulative_weight * 10000 // total_weight as integer) as bucket_to,
        variant_position = 1 as is_control
    from cumulated

)

select * from final
