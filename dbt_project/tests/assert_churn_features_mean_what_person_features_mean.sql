{#- One meaning per feature name: at as_of, every column churn_scoring_snapshot (the churn
    features, snapshot 0) shares with person_features holds the same value for the same person
    (session_count, session_count_30d, session_count_90d, event_count_30d, event_count_90d,
    completed_orders, lifetime_spend, ...). The churn features are computed from whole-day
    buckets, person_features from instants; both count the window (as_of - N days, as_of]. A
    churn feature with another meaning needs a name of its own (days_since_first_activity is not
    tenure_days, completed_orders not order_count).
    Returns the persons and columns that differ. -#}

{%- set shared = [] -%}
{%- if execute -%}
    {%- set feature_columns = adapter.get_columns_in_relation(ref('person_features'))
        | map(attribute='name') | list -%}
    {%- for column in adapter.get_columns_in_relation(ref('churn_scoring_snapshot')) -%}
        {%- if column.name in feature_columns and column.name != 'person_id' -%}
            {%- do shared.append(column.name) -%}
        {%- endif -%}
    {%- endfor -%}
{%- endif %}

select
    churn.person_id,
    column_name
from {{ ref('churn_scoring_snapshot') }} as churn
inner join {{ ref('person_features') }} as features on churn.person_id = features.person_id
cross join (
    select unnest({{ shared if shared else ['none'] }}) as column_name
) as columns
where
    {%- for column in shared %}
    {{ 'or ' if not loop.first }}(
        column_name = '{{ column }}' and churn.{{ column }} is distinct from features.{{ column }}
    )
    {%- else %}
    false
    {%- endfor %}
