{#- The churn model's training and scoring rows for every person, whatever their consent:
    snapshot 0 (as_of) from int_churn_features_at_as_of and the earlier snapshots, with their
    churn label, computed here with the same features (macros/churn_snapshot_ctes.sql). Every
    row is in the population (churn_population_condition: any activity before its snapshot, or
    within var('churn_population_active_days') when that is set).

    The heavy part of the churn training set: only the nightly full_build builds it. The mart
    churn_snapshots keeps the rows of the persons profiled now (marts.person_features) and is
    rebuilt by every run, sensor runs included, so a withdrawn consent leaves the training set
    in the next run without anything deleting from a dbt table.
-#}

with

events as (

    select person_id, occurred_at, is_page_view, is_product_view, is_add_to_cart
    from {{ ref('int_events_stitched') }}

),

sessions as (

    select person_id, started_at from {{ ref('int_events_sessionized') }}

),

orders as (

    select person_id, ordered_at, is_completed, amount from {{ ref('int_orders_deduplicated') }}

),

snapshot_at_as_of as (

    select * exclude (events_loaded_through, identifiers_fingerprint, orders_fingerprint)
    from {{ ref('int_churn_features_at_as_of') }}

),

{{ churn_snapshot_ctes(range(1, var('churn_snapshots')) | list) }}

select * exclude (first_activity_at, last_session_at, last_order_at)
from snapshot_at_as_of
where {{ churn_population_condition() }}

union all by name

select * exclude (first_activity_at, last_session_at, last_order_at)
from churn_snapshot_rows
where {{ churn_population_condition() }}
