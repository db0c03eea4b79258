{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='person_id',
        on_schema_change='fail',
        post_hook="{{ persons_aggregate_post_hook(['as_of', 'snapshot_at']) }}",
    )
}}

{#- Churn features at as_of (churn snapshot 0) for every person with activity, whatever their
    consent: marts.churn_scoring_snapshot keeps the persons who are scored.

    The features are those of the training snapshots (macros/churn_snapshot_ctes.sql). The model
    is incremental by person (macros/persons_to_refresh.sql), so that a sensor run costs in
    proportion to its new data: it recomputes the persons with new events, changed identifiers
    or orders, rows crossing a 30- or 90-day window edge since the last run's as_of, and persons
    whose whole-day counts (days since the last session or order, tenure) step to the next day
    between the two as_ofs. The post-hook moves as_of and snapshot_at (snapshot 0 lies at as_of)
    of every row to the run's. The result equals a full rebuild (tests/dbt/test_dbt_sessions.py).
-#}

{%- set orders_fingerprints -%}
    select
        person_id,
        bit_xor(hash(order_id, ordered_at, is_completed, amount)) as orders_fingerprint
    from {{ ref('int_orders_deduplicated') }}
    group by person_id
{%- endset -%}

with

{% if is_incremental() %}

persons_to_refresh as (

    {{ persons_to_refresh(
        [
            (ref('int_events_stitched'), 'occurred_at', [0, 30 * 86400, 90 * 86400]),
            (ref('int_events_sessionized'), 'started_at', [0, 30 * 86400, 90 * 86400]),
            (ref('int_orders_deduplicated'), 'ordered_at', [0, 90 * 86400]),
        ],
        {'orders_fingerprint': orders_fingerprints},
        ['first_activity_at', 'last_session_at', 'last_order_at'],
    ) }}

),

{% endif %}

events as (

    select person_id, occurred_at, is_page_view, is_product_view, is_add_to_cart
    from {{ ref('int_events_stitched') }}
    {{ only_persons_to_refresh() }}

),

sessions as (

    select person_id, started_at from {{ ref('int_events_sessionized') }}
    {{ only_persons_to_refresh() }}

),

orders as (

    select person_id, ordered_at, is_completed, amount from {{ ref('int_orders_deduplicated') }}
    {{ only_persons_to_refresh() }}

),

{{ churn_snapshot_ctes([0]) }},

identifiers_fingerprints as (

    {{ identifiers_fingerprints() }}

),

orders_fingerprints as (

    {{ orders_fingerprints }}

),

final as (

    select
        churn_snapshot_rows.*,
        -- what the row was computed from (macros/persons_to_refresh.sql)
        (select max(loaded_at) from {{ ref('int_events_stitched') }}) as events_loaded_through,
        identifiers_fingerprints.identifiers_fingerprint,
        orders_fingerprints.orders_fingerprint
    from churn_snapshot_rows
    left join identifiers_fingerprints
        on churn_snapshot_rows.person_id = identifiers_fingerprints.person_id
    left join orders_fingerprints
        on churn_snapshot_rows.person_id = orders_fingerprints.person_id

)

select * from final
