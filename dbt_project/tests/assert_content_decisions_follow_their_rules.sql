{{ config(meta={'dagster': {'ref': {'name': 'content_decisions'}}}) }}

-- Every content decision names a rule of seed content_decision_rules, with that rule's variant.

with

decisions as (

    select * from {{ ref('content_decisions') }}

),

rules as (

    select * from {{ ref('content_decision_rules') }}

)

select
    decisions.person_id,
    decisions.decision_rule_id,
    decisions.content_variant
from decisions
left join rules
    on decisions.decision_rule_id = rules.rule_id
    and decisions.content_variant = rules.content_variant
where rules.rule_id is null
