{#- The purchase funnel by day: product view -> add to cart -> checkout -> purchase. A session
    reaches a step when it has that step's event and reached every step before it (a closed
    funnel). Days are calendar days in var('reporting_time_zone').

    by_segment=false: every session once (marts.funnel_steps); by_segment=true: the sessions of
    the persons in each segment at as_of, per segment (marts.funnel_steps_by_segment). A person
    holds several segments, so the per-segment rows overlap and must not be summed across
    segments: the two are separate tables. -#}

{% macro funnel_steps(by_segment) -%}

with

sessions as (

    select * from {{ ref('sessions') }}
    where started_at <= {{ as_of_timestamp() }}

),

{%- if by_segment %}

memberships as (

    select * from {{ ref('person_segments') }}

),
{%- endif %}

session_steps as (

    select
        session_id,
        person_id,
        session_date,
        product_views > 0 as reached_product_view,
        product_views > 0 and add_to_carts > 0 as reached_add_to_cart,
        product_views > 0 and add_to_carts > 0 and checkout_starts > 0 as reached_checkout,
        product_views > 0 and add_to_carts > 0 and checkout_starts > 0 and purchases > 0
            as reached_purchase
    from sessions

),

sessions_by_segment as (

    {%- if by_segment %}

    select
        session_steps.*,
        memberships.segment_group,
        memberships.segment_key
    from session_steps
    inner join memberships on session_steps.person_id = memberships.person_id

    {%- else %}

    -- every session once, as one group
    select
        session_steps.*,
        'all' as segment_group,
        'all' as segment_key
    from session_steps

    {%- endif %}

),

daily as (

    select
        session_date as funnel_date,
        segment_group,
        segment_key,
        count(*) as session_count,
        count(case when reached_product_view then 1 end) as product_view_sessions,
        count(case when reached_add_to_cart then 1 end) as add_to_cart_sessions,
        count(case when reached_checkout then 1 end) as checkout_sessions,
        count(case when reached_purchase then 1 end) as purchase_sessions
    from sessions_by_segment
    group by session_date, segment_group, segment_key

),

steps as (

    {%- set funnel = [
        ('product_view', 'product_view_sessions', 'session_count'),
        ('add_to_cart', 'add_to_cart_sessions', 'product_view_sessions'),
        ('checkout', 'checkout_sessions', 'add_to_cart_sessions'),
        ('purchase', 'purchase_sessions', 'checkout_sessions'),
    ] %}
    {%- for step_name, reached, previous in funnel %}

    select
        funnel_date, segment_group, segment_key, session_count,
        {{ loop.index }} as step_number, '{{ step_name }}' as step_name,
        {{ reached }} as sessions_reached, {{ previous }} as previous_step_sessions
    from daily
    {%- if not loop.last %}

    union all
    {%- endif %}
    {%- endfor %}

),

first_steps as (

    select
        funnel_date,
        segment_key,
        sessions_reached as first_step_sessions
    from steps
    where step_number = 1

),

final as (

    select
        steps.funnel_date,
        {%- if by_segment %}
        steps.segment_group,
        steps.segment_key,
        {%- endif %}
        steps.step_number,
        steps.step_name,
        steps.session_count,
        steps.sessions_reached,
        steps.previous_step_sessions,
        steps.previous_step_sessions - steps.sessions_reached as drop_off_sessions,
        case
            when steps.previous_step_sessions > 0
                then steps.sessions_reached * 1.0 / steps.previous_step_sessions
        end as step_conversion_rate,
        case
            when steps.previous_step_sessions > 0
                then 1 - steps.sessions_reached * 1.0 / steps.previous_step_sessions
        end as drop_off_rate,
        case
            when first_steps.first_step_sessions > 0
                then steps.sessions_reached * 1.0 / first_steps.first_step_sessions
        end as conversion_from_first_step
    from steps
    inner join first_steps
        on steps.funnel_date = first_steps.funnel_date
        and steps.segment_key = first_steps.segment_key

)

select * from final
{%- endmacro %}
