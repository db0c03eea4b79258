{#- One row per exposed person and experiment, the input of the analysis (ml/experiments.py):
    each metric over the person's analysis window, from their first exposure until the
    experiment's end or as_of, whichever comes first, and the same metric over the
    pre-exposure period (var('experiment_pre_period_days') days before the first exposure),
    the covariate CUPED uses. Metrics: conversion (1 when the person completed an order in the
    window, else 0), revenue (amount of completed orders, reporting currency), orders
    (completed orders) and sessions (sessions started). -#}

with

exposures as (

    select * from {{ ref('experiment_exposures') }}

),

experiments as (

    select * from {{ ref('experiments') }}

),

orders as (

    select * from {{ ref('int_orders_deduplicated') }}
    where is_completed and ordered_at <= {{ as_of_timestamp() }}

),

sessions as (

    select * from {{ ref('sessions') }}
    where started_at <= {{ as_of_timestamp() }}

),

windows as (

    select
        exposures.experiment_key,
        exposures.person_id,
        exposures.variant,
        exposures.first_exposed_at,
        least(experiments.end_at, {{ as_of_timestamp() }}) as window_end,
        exposures.first_exposed_at
        - to_days({{ var('experiment_pre_period_days') }}) as pre_period_start
    from exposures
    inner join experiments on exposures.experiment_key = experiments.experiment_key

),

order_metrics as (

    select
        windows.experiment_key,
        windows.person_id,
        count(*) filter (where orders.ordered_at >= windows.first_exposed_at) as orders,
        coalesce(
            sum(orders.amount) filter (where orders.ordered_at >= windows.first_exposed_at), 0
        ) as revenue,
        count(*) filter (where orders.ordered_at < windows.first_exposed_at) as pre_orders,
        coalesce(
            sum(orders.amount) filter (where orders.ordered_at < windows.first_exposed_at), 0
        ) as pre_revenue
    from windows
    inner join orders
        on
            windows.person_id = orders.person_id
            and orders.ordered_at >= windows.pre_period_start
            and orders.ordered_at <= windows.window_end
    group by 1, 2

),

session_metrics as (

    select
        windows.experiment_key,
        windows.person_id,
        count(*) filter (where sessions.started_at >= windows.first_exposed_at) as sessions,
        count(*) filter (where sessions.started_at < windows.first_exposed_at) as pre_sessions
    from windows
    inner join sessions
        on
            windows.person_id = sessions.person_id
            and sessions.started_at >= windows.pre_period_start
            and sessions.started_at <= windows.window_end
    group by 1, 2

),

final as (

    select
        windows.experiment_key,
        windows.person_id,
        windows.variant,
        windows.first_exposed_at,
        date_diff('second', windows.first_exposed_at, windows.window_end) / 86400.0
            as days_in_window,
        case when coalesce(order_metrics.orders, 0) > 0 then 1.0::double else 0.0::double end as conversion,
        cast(coalesce(order_metrics.revenue, 0) as double) as revenue,
        cast(coalesce(order_metrics.orders, 0) as double) as orders,
        cast(coalesce(session_metrics.sessions, 0) as double) as sessions,
        case when coalesce(order_metrics.pre_orders, 0) > 0 then 1.0::double else 0.0::double end
            as pre_conversion,
        cast(coalesce(order_metrics.pre_revenue, 0) as double) as pre_revenue,
        cast(coalesce(order_metrics.pre_orders, 0) as double) as pre_orders,
        cast(coalesce(session_metrics.pre_sessions, 0) as double) as pre_sessions,
        {{ as_of_timestamp() }} as as_of
    from windows
    left join order_metrics
        on
            windows.experiment_key = order_metrics.experiment_key
            and windows.person_id = order_metrics.person_id
    left join session_metrics
        on
            windows.experiment_key = session_metrics.experiment_key
            and windows.person_id = session_metrics.person_id

)

select * from final
