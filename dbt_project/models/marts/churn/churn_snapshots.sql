{#- Training and scoring rows for the churn model in ml/: snapshot 0 (as_of) from
    churn_scoring_snapshot, the earlier snapshots computed here with the same features
    (macros/churn_snapshot_ctes.sql), for the persons who consent to analytics.

    Only the nightly full_build builds it (with the churn model it trains); sensor runs update
    churn_scoring_snapshot, which is what is scored.
-#}

with

profiled_persons as (

    -- only persons who consent to analytics now are trained on and scored
    select person_id from {{ ref('person_consents') }}
    where has_analytics_consent

),

events as (

    select * from {{ ref('int_events_stitched') }}
    where person_id in (select person_id from profiled_persons)

),

sessions as (

    select * from {{ ref('sessions') }}
    where person_id in (select person_id from profiled_persons)

),

orders as (

    select * from {{ ref('int_orders_deduplicated') }}
    where person_id in (select person_id from profiled_persons)

),

{{ churn_snapshot_ctes(range(1, var('churn_snapshots')) | list) }}

select * from {{ ref('churn_scoring_snapshot') }}

union all by name

select * exclude (first_activity_at, last_session_at, last_order_at)
from churn_snapshot_rows
where {{ churn_population_condition() }}
