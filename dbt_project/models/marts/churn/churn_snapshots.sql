{#- Point-in-time activity features and the churn label per person and snapshot, for ml/.

    Snapshots lie every churn_snapshot_interval_days days before as_of (as_of itself is
    snapshot 0, the one that is scored). Everything is bucketed by whole days before as_of, so
    the buckets line up exactly with the snapshots: a snapshot's features come only from the
    buckets at or before it (no leakage), its label only from the churn_horizon_days after it.
    A person belongs to a snapshot when they were active (a session or an order) at or before
    it and within churn_population_active_days before it. The label is null while the horizon
    has not fully elapsed by as_of: such snapshots are scored, never trained on.

    Churned: no session started and no order placed within the horizon after the snapshot.
-#}

{%- set as_of = as_of_timestamp() -%}
{%- set interval_days = var('churn_snapshot_interval_days') -%}
{%- set horizon_days = var('churn_horizon_days') -%}
{%- set active_days = var('churn_population_active_days') -%}

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
    where started_at <= {{ as_of }} and person_id in (select person_id from profiled_persons)

),

orders as (

    select * from {{ ref('int_orders_deduplicated') }}
    where person_id in (select person_id from profiled_persons)

),

snapshots as (

    select
        snapshot_number,
        snapshot_number * {{ interval_days }} as snapshot_day,
        {{ dbt.dateadd('day', '-' ~ interval_days ~ ' * snapshot_number', as_of) }} as snapshot_at,
        snapshot_number * {{ interval_days }} >= {{ horizon_days }} as is_labelled
    from range({{ var('churn_snapshots') }}) as numbers(snapshot_number)

),

daily_events as (

    select
        person_id,
        {{ days_before('occurred_at', as_of) }} as day,
        count(*) as events,
        count(case when is_page_view then 1 end) as page_views,
        count(case when is_product_view then 1 end) as product_views,
        count(case when is_add_to_cart then 1 end) as add_to_carts
    from events
    group by all

),

daily_sessions as (

    select
        person_id,
        {{ days_before('started_at', as_of) }} as day,
        count(*) as sessions
    from sessions
    group by all

),

daily_orders as (

    select
        person_id,
        {{ days_before('ordered_at', as_of) }} as day,
        count(case when is_completed then 1 end) as orders,
        coalesce(sum(case when is_completed then amount end), 0) as spend
    from orders
    group by all

),

daily as (

    select
        person_id,
        day,
        coalesce(daily_events.events, 0) as events,
        coalesce(daily_events.page_views, 0) as page_views,
        coalesce(daily_events.product_views, 0) as product_views,
        coalesce(daily_events.add_to_carts, 0) as add_to_carts,
        coalesce(daily_sessions.sessions, 0) as sessions,
        coalesce(daily_orders.orders, 0) as orders,
        coalesce(daily_orders.spend, 0) as spend
    from daily_events
    full outer join daily_sessions using (person_id, day)
    full outer join daily_orders using (person_id, day)

),

history as (

    -- the buckets at or before each snapshot (a larger day is further in the past)
    select
        snapshots.snapshot_number,
        snapshots.snapshot_at,
        snapshots.is_labelled,
        daily.*,
        daily.day - snapshots.snapshot_day as days_before_snapshot
    from snapshots
    inner join daily on daily.day >= snapshots.snapshot_day

),

features as (

    select
        person_id,
        snapshot_number,
        snapshot_at,
        is_labelled,
        min(days_before_snapshot) filter (where sessions > 0 or orders > 0)
            as days_since_last_activity,
        min(days_before_snapshot) filter (where sessions > 0) as days_since_last_session,
        min(days_before_snapshot) filter (where orders > 0) as days_since_last_order,
        max(days_before_snapshot) as tenure_days,
        sum(sessions) as sessions,
        sum(sessions) filter (where days_before_snapshot < 30) as sessions_30d,
        sum(sessions) filter (where days_before_snapshot < 90) as sessions_90d,
        sum(events) filter (where days_before_snapshot < 30) as events_30d,
        sum(events) filter (where days_before_snapshot < 90) as events_90d,
        sum(page_views) filter (where days_before_snapshot < 90) as page_views_90d,
        sum(product_views) filter (where days_before_snapshot < 90) as product_views_90d,
        sum(add_to_carts) filter (where days_before_snapshot < 90) as add_to_carts_90d,
        sum(orders) as orders,
        sum(orders) filter (where days_before_snapshot < 90) as orders_90d,
        sum(spend) as monetary,
        sum(spend) filter (where days_before_snapshot < 90) as monetary_90d
    from history
    group by all
    having days_since_last_activity < {{ active_days }}

),

activity_after_snapshots as (

    -- sessions or orders within the horizon after each labelled snapshot
    select distinct
        daily.person_id,
        snapshots.snapshot_number
    from snapshots
    inner join daily
        on daily.day < snapshots.snapshot_day
        and daily.day >= snapshots.snapshot_day - {{ horizon_days }}
    where snapshots.is_labelled and (daily.sessions > 0 or daily.orders > 0)

),

final as (

    select
        features.person_id,
        features.snapshot_at,
        features.snapshot_number,
        case
            when features.is_labelled then activity_after_snapshots.person_id is null
        end as churned,
        cast(features.days_since_last_activity as integer) as days_since_last_activity,
        cast(features.days_since_last_session as integer) as days_since_last_session,
        cast(features.days_since_last_order as integer) as days_since_last_order,
        cast(features.tenure_days as integer) as tenure_days,
        cast(features.sessions as bigint) as sessions,
        cast(coalesce(features.sessions_30d, 0) as bigint) as sessions_30d,
        cast(coalesce(features.sessions_90d, 0) as bigint) as sessions_90d,
        cast(coalesce(features.events_30d, 0) as bigint) as events_30d,
        cast(coalesce(features.events_90d, 0) as bigint) as events_90d,
        cast(coalesce(features.page_views_90d, 0) as bigint) as page_views_90d,
        cast(coalesce(features.product_views_90d, 0) as bigint) as product_views_90d,
        cast(coalesce(features.add_to_carts_90d, 0) as bigint) as add_to_carts_90d,
        cast(features.orders as bigint) as orders,
        cast(coalesce(features.orders_90d, 0) as bigint) as orders_90d,
        cast(features.monetary as decimal(18, 2)) as monetary,
        cast(coalesce(features.monetary_90d, 0) as decimal(18, 2)) as monetary_90d,
        {{ as_of }} as as_of
    from features
    left join activity_after_snapshots
        on features.person_id = activity_after_snapshots.person_id
        and features.snapshot_number = activity_after_snapshots.snapshot_number

)

select * from final
