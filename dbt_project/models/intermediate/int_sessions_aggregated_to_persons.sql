{#- Session-based features per person, as of var('as_of'). -#}

{%- set as_of = as_of_timestamp() -%}

with

sessions as (

    select * from {{ ref('sessions') }}
    where started_at <= {{ as_of }}

),

aggregated as (

    select
        person_id,
        count(*) as sessions,
        count(case when started_at > {{ dbt.dateadd('day', -7, as_of) }} then 1 end) as sessions_7d,
        count(case when started_at > {{ dbt.dateadd('day', -30, as_of) }} then 1 end)
            as sessions_30d,
        count(case when started_at > {{ dbt.dateadd('day', -90, as_of) }} then 1 end)
            as sessions_90d,
        avg(duration_seconds) as avg_session_duration_seconds,
        avg(page_views) as pages_per_session,
        avg(content_page_views) as avg_content_pages_per_session,
        count(case when is_converted then 1 end) as converted_sessions,
        count(case when is_bounce then 1 end) as bounced_sessions,
        count(case when is_engaged then 1 end) as engaged_sessions
    from sessions
    group by person_id

),

final as (

    select
        *,
        converted_sessions * 1.0 / sessions as conversion_rate,
        bounced_sessions * 1.0 / sessions as bounce_rate
    from aggregated

)

select * from final
