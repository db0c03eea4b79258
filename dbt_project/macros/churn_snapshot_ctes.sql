{#- Point-in-time activity features and the churn label per person and snapshot (for ml/).

    Renders the CTEs from `snapshots` to `churn_snapshot_rows`; the caller defines `events`,
    `sessions` and `orders` (int_events_stitched, int_events_sessionized and int_orders_deduplicated rows, of
    the persons it wants) before them and selects from `churn_snapshot_rows`. Used by
    int_churn_features_at_as_of (snapshot 0, every run) and churn_snapshots (the earlier,
    labelled snapshots, nightly), so both compute the features the same way.

    Snapshots lie every churn_snapshot_interval_days days before as_of (as_of itself is
    snapshot 0, the one that is scored). Everything is bucketed by whole days before as_of, so
    the buckets line up exactly with the snapshots: a snapshot's features come only from the
    buckets at or before it (no leakage), its label only from the churn_horizon_days after it.
    The label is null while the horizon has not fully elapsed by as_of: such snapshots are
    scored, never trained on. Churned: no session started and no order placed within the horizon
    after the snapshot.

    Feature names: a name that person_features has too means the same there (sessions,
    sessions_30d, sessions_90d, events_30d, events_90d, completed_orders, monetary: the sessions,
    events, completed orders or their spend in the window (instant - N days, instant], the
    instant being the snapshot); the whole-day buckets give exactly those windows because
    snapshots lie whole days before as_of. Names with another meaning here have names of their
    own: days_since_first_activity counts from the first event, session or order
    (person_features.tenure_days also counts the CRM signup); completed_orders(_90d) count
    completed orders only (person_features.orders counts every order). Each row carries
    the horizon its label was computed with (churn_horizon_days), so ml/ learns it from the
    data instead of repeating the var.

    Every row of a person with any event, session or order at or before the snapshot is
    returned: the population (churn_population_condition) is the caller's filter. The row also
    holds the instants its day counts come from (first activity, last session, last completed
    order), which the incremental int_churn_features_at_as_of needs.
-#}
{% macro churn_snapshot_ctes(snapshot_numbers) -%}

{%- set as_of = as_of_timestamp() -%}
{%- set interval_days = var('churn_snapshot_interval_days') -%}
{%- set horizon_days = var('churn_horizon_days') -%}

snapshots as (

    select
        snapshot_number,
        snapshot_number * {{ interval_days }} as snapshot_day,
        {{ dbt.dateadd('day', '-' ~ interval_days ~ ' * snapshot_number', as_of) }} as snapshot_at,
        snapshot_number * {{ interval_days }} >= {{ horizon_days }} as is_labelled
    from (select cast(unnest({{ snapshot_numbers }}) as bigint) as snapshot_number)

),

daily_events as (

    select
        person_id,
        {{ days_before('occurred_at', as_of) }} as day,
        count(*) as events,
        count(case when is_page_view then 1 end) as page_views,
        count(case when is_product_view then 1 end) as product_views,
        count(case when is_add_to_cart then 1 end) as add_to_carts,
        min(occurred_at) as first_at
    from events
    group by all

),

daily_sessions as (

    select
        person_id,
        {{ days_before('started_at', as_of) }} as day,
        count(*) as sessions,
        min(started_at) as first_at,
        max(started_at) as last_session_at
    from sessions
    group by all

),

daily_orders as (

    select
        person_id,
        {{ days_before('ordered_at', as_of) }} as day,
        count(case when is_completed then 1 end) as orders,
        coalesce(sum(case when is_completed then amount end), 0) as spend,
        min(ordered_at) as first_at,
        max(case when is_completed then ordered_at end) as last_order_at
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
        coalesce(daily_orders.spend, 0) as spend,
        least(daily_events.first_at, daily_sessions.first_at, daily_orders.first_at) as first_at,
        daily_sessions.last_session_at,
        daily_orders.last_order_at
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
        max(days_before_snapshot) as days_since_first_activity,
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
        sum(spend) filter (where days_before_snapshot < 90) as monetary_90d,
        min(first_at) as first_activity_at,
        max(last_session_at) as last_session_at,
        max(last_order_at) as last_order_at
    from history
    group by all

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

churn_snapshot_rows as (

    select
        features.person_id,
        features.snapshot_at,
        features.snapshot_number,
        case
            when features.is_labelled then activity_after_snapshots.person_id is null
        end as churned,
        cast({{ horizon_days }} as integer) as churn_horizon_days,
        cast(features.days_since_last_activity as integer) as days_since_last_activity,
        cast(features.days_since_last_session as integer) as days_since_last_session,
        cast(features.days_since_last_order as integer) as days_since_last_order,
        cast(features.days_since_first_activity as integer) as days_since_first_activity,
        cast(features.sessions as bigint) as sessions,
        cast(coalesce(features.sessions_30d, 0) as bigint) as sessions_30d,
        cast(coalesce(features.sessions_90d, 0) as bigint) as sessions_90d,
        cast(coalesce(features.events_30d, 0) as bigint) as events_30d,
        cast(coalesce(features.events_90d, 0) as bigint) as events_90d,
        cast(coalesce(features.page_views_90d, 0) as bigint) as page_views_90d,
        cast(coalesce(features.product_views_90d, 0) as bigint) as product_views_90d,
        cast(coalesce(features.add_to_carts_90d, 0) as bigint) as add_to_carts_90d,
        cast(features.orders as bigint) as completed_orders,
        cast(coalesce(features.orders_90d, 0) as bigint) as completed_orders_90d,
        cast(features.monetary as decimal(18, 2)) as monetary,
        cast(coalesce(features.monetary_90d, 0) as decimal(18, 2)) as monetary_90d,
        {{ as_of }} as as_of,
        features.first_activity_at,
        features.last_session_at,
        features.last_order_at
    from features
    left join activity_after_snapshots
        on features.person_id = activity_after_snapshots.person_id
        and features.snapshot_number = activity_after_snapshots.snapshot_number

)

{%- endmacro %}


{#- Who is in a churn snapshot: any activity (a session or an order) before it, or, when
    var('churn_population_active_days') is set, activity within that many days before it. -#}
{% macro churn_population_condition() -%}
    {%- set days = var('churn_population_active_days') -%}
    {%- if days is none -%}
    days_since_last_activity is not null
    {%- else -%}
    days_since_last_activity < {{ days }}
    {%- endif %}
{%- endmacro %}
