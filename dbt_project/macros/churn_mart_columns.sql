{#- The published names of the churn features (marts.churn_snapshots and
    marts.churn_scoring_snapshot): counts are named as counts, and a column the churn marts share
    with marts.person_features carries its name there (tests/assert_churn_features_mean_what_
    person_features_mean.sql checks that they agree). The intermediate models keep their
    internal names, so warehouses built before the rename need no full refresh. -#}

{% macro churn_mart_renames() -%}
rename (
    sessions as session_count,
    sessions_30d as session_count_30d,
    sessions_90d as session_count_90d,
    events_30d as event_count_30d,
    events_90d as event_count_90d,
    monetary as lifetime_spend,
    monetary_90d as spend_90d
)
{%- endmacro %}
