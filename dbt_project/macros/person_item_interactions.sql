{#- Implicit feedback per person and product from the stitched events at or before `until`:
    counts of product views, adds to cart and purchases, and interaction_weight, the sum over
    the events of their role's weight (seed recommendation_event_weights) halved every
    var('recommendation_half_life_days') days before `until`. Persons without analytics
    consent are left out (they are not profiled). The one definition of the weighting:
    person_item_interactions (at as_of) and recommendation_backtest_interactions (at the
    backtest cutoff) both call it. -#}
{% macro person_item_interaction_rows(until) -%}
    select
        events.person_id,
        events.product_id,
        count(*) filter (where events.is_product_view) as views,
        count(*) filter (where events.is_add_to_cart) as add_to_carts,
        count(*) filter (where events.is_purchase) as purchases,
        sum(
            weights.weight * pow(
                0.5,
                (epoch({{ until }}) - epoch(events.occurred_at)) / 86400.0
                / {{ var('recommendation_half_life_days') }}
            )
        ) as interaction_weight,
        min(events.occurred_at) as first_interacted_at,
        max(events.occurred_at) as last_interacted_at
    from {{ ref('int_events_stitched') }} as events
    inner join {{ ref('recommendation_event_weights') }} as weights
        on events.event_role = weights.event_role
    where
        events.product_id is not null
        and events.occurred_at <= {{ until }}
        and events.person_id in (
            select person_id from {{ ref('person_consents') }} where has_analytics_consent
        )
    group by events.person_id, events.product_id
{%- endmacro %}
