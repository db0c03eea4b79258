{#- Training and scoring rows for the churn model in ml/: the snapshots of
    intermediate.int_churn_features_at_snapshots (snapshot 0 at as_of, the earlier ones with
    their churn label) of the persons profiled now, those in person_features (analytics consent).

    The snapshots themselves are nightly work (int_churn_features_at_snapshots is built by the
    nightly full_build only); this filter runs in every run, sensor runs included, so a person
    who withdrew consent leaves the training set in the next run.
-#}

with

profiled_persons as (

    select person_id from {{ ref('person_features') }}

),

snapshots as (

    select * from {{ ref('int_churn_features_at_snapshots') }}

)

select * {{ churn_mart_renames() }}
from snapshots
where person_id in (select person_id from profiled_persons)
