{#- Exactly one content variant per person, as of as_of, from seed content_decisions.

    A rule fires for the persons holding its segment (an empty segment_key fires for everyone:
    the default); segment rules fire only for persons with personalization consent;
    the firing rule with the lowest priority wins, ties broken by rule_id. Two rules that can
    fire for the same person at the same priority with different content make the build fail,
    naming both: they can, unless their segments are different segments of one exclusive group
    (a person holds at most one purchase stage and one RFM segment).

    Experiments: persons of the global personalization holdout (personalization_holdouts) get
    the default rules only (is_held_out); experiment_key / experiment_variant are the person's
    assignment in the active server-side experiment of var('content_experiment_layer') (one at
    most: experiments of a layer exclude each other), which says how the content is rendered.
-#}

with

rules as (

    select * from {{ ref('content_decision_rules') }}

),

catalog as (

    select * from {{ ref('int_segments_unioned') }}

),

memberships as (

    select * from {{ ref('person_segments') }}

),

features as (

    select * from {{ ref('person_features') }}

),

personalizable_persons as (

    select person_id from {{ ref('person_consents') }}
    where has_personalization_consent

),

holdouts as (

    select * from {{ ref('personalization_holdouts') }}

),

content_assignments as (

    select * from {{ ref('experiment_assignments') }}
    where
        layer = {{ quoted_literal(var('content_experiment_layer')) }}
        and exposure_source = 'assignment'
        and is_active

),

rules_with_groups as (

    select
        rules.*,
        catalog.segment_group,
        coalesce(catalog.is_exclusive_group, false) as is_exclusive_group
    from rules
    left join catalog on rules.segment_key = catalog.segment_key

),

conflicts as (

    select
        first_rule.rule_id as first_rule_id,
        second_rule.rule_id as second_rule_id,
        first_rule.priority,
        first_rule.content_variant as first_content_variant,
        second_rule.content_variant as second_content_variant
    from rules_with_groups as first_rule
    inner join rules_with_groups as second_rule
        on first_rule.priority = second_rule.priority
        and first_rule.rule_id < second_rule.rule_id
        and first_rule.content_variant <> second_rule.content_variant
    where not (
        first_rule.is_exclusive_group
        and second_rule.is_exclusive_group
        and first_rule.segment_group = second_rule.segment_group
        and first_rule.segment_key <> second_rule.segment_key
    )

),

conflict_check as (

    -- fails the build (DuckDB error()) when two rules conflict, naming both
    select
        count(
            error(
                'content_decisions: rules ''' || first_rule_id || ''' and ''' || second_rule_id
                || ''' can match the same person at priority ' || cast(priority as varchar)
                || ' with different content (' || first_content_variant || ' vs '
                || second_content_variant || '); give one of them another priority'
            )
        ) as conflicts
    from conflicts

),

candidates as (

    select
        features.person_id,
        rules.rule_id,
        rules.priority,
        rules.segment_key,
        rules.content_variant
    from features
    cross join rules
    where rules.segment_key is null

    union all

    select
        memberships.person_id,
        rules.rule_id,
        rules.priority,
        rules.segment_key,
        rules.content_variant
    from memberships
    inner join rules on memberships.segment_key = rules.segment_key
    -- segment-based content only with personalization consent; others get the default rules
    where
        memberships.person_id in (select person_id from personalizable_persons)
        -- ... and never for the personalization holdout
        and memberships.person_id not in (select person_id from holdouts where is_held_out)

),

decisions as (

    select *
    from candidates
    qualify row_number() over (partition by person_id order by priority, rule_id) = 1

),

final as (

    select
        decisions.person_id,
        decisions.content_variant,
        decisions.rule_id as decision_rule_id,
        decisions.priority as decision_priority,
        decisions.segment_key as decision_segment_key,
        coalesce(holdouts.is_held_out, false) as is_held_out,
        content_assignments.experiment_key,
        content_assignments.variant as experiment_variant,
        {{ as_of_timestamp() }} as as_of
    from decisions
    cross join conflict_check
    left join holdouts on decisions.person_id = holdouts.person_id
    left join content_assignments on decisions.person_id = content_assignments.person_id
    where conflict_check.conflicts = 0

)

select * from final
