{#- Churn snapshot 0: the features at as_of of every person to score (consent to analytics, and
    the population rule of macros/churn_snapshot_ctes.sql: any activity before as_of, unless
    var('churn_population_active_days') limits it), from the incremental
    int_churn_features_at_as_of. Rebuilt by every run, sensor runs included; ml/churn_scores
    scores it and the drift check compares it with the model's training baseline. -#}

select * exclude (
    first_activity_at,
    last_session_at,
    last_order_at,
    events_loaded_through,
    identifiers_fingerprint,
    orders_fingerprint
)
{{ churn_mart_renames() }}
from {{ ref('int_churn_features_at_as_of') }}
where
    person_id in (
        select person_id from {{ ref('person_consents') }}
        where has_analytics_consent
    )
    and {{ churn_population_condition() }}
