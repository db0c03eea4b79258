{#- Experiments of one mutual-exclusion layer take disjoint shares of it (so nobody is in two
    of them), each share non-empty; and every experiment's variants have positive integer
    weights. Returns the offending experiments. -#}
{% test experiment_layers_do_not_overlap(model) %}

with

experiments as (

    select * from {{ model }}

),

overlapping as (

    select first_experiment.experiment_key
    from experiments as first_experiment
    inner join experiments as second_experiment
        on
            first_experiment.layer = second_experiment.layer
            and first_experiment.experiment_key < second_experiment.experiment_key
            and first_experiment.layer_from_percent < second_experiment.layer_to_percent
            and second_experiment.layer_from_percent < first_experiment.layer_to_percent

),

empty_shares as (

    select experiment_key from experiments
    where layer_from_percent >= layer_to_percent

),

bad_weights as (

    select experiment_key
    from experiments,
        unnest(string_split(variants, ';')) as spec(variant_spec)
    where
        coalesce(try_cast(trim(split_part(variant_spec, ':', 2)) as integer), 0) <= 0
        or trim(split_part(variant_spec, ':', 1)) = ''

)

select * from overlapping
union all
select * from empty_shares
union all
select * from bad_weights

{% endtest %}
