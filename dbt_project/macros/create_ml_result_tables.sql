{#- on-run-start: the tables ml/ writes, created empty if no model has written them yet, so that
    the models reading them build before the first training. Their columns are the contract the
    ml assets keep (orchestration/assets/ml.py writes exactly these). -#}
{% macro create_ml_result_tables() -%}
    create schema if not exists ml;
    create table if not exists ml.churn_scores (
        person_id varchar not null,
        churn_probability double not null,
        risk_band varchar not null,
        is_at_risk boolean not null,
        model_version varchar not null,
        as_of timestamp not null
    );
{%- endmacro %}
