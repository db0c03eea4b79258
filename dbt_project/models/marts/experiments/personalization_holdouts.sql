{#- The global personalization holdout: every person of person_features with their holdout
    bucket; is_held_out when the bucket falls below var('personalization_holdout_share') of
    the 10000 buckets. Held-out persons get the default content decision and are in no
    experiment. -#}

with

persons as (

    select person_id from {{ ref('person_features') }}

),

final as (

    select
        person_id,
        {{ experiment_bucket("'holdout'", 'person_id') }} as holdout_bucket,
        {{ experiment_bucket("'holdout'", 'person_id') }}
        < {{ var('personalization_holdout_share') }} * 10000 as is_held_out,
        {{ as_of_timestamp() }} as as_of
    from persons

)

select * from final
