{#- One row per person: the consent in force for each purpose of var('consent_purposes'), as of
    as_of. The latest statement of any of the person's identifiers wins (CRM or event); at equal
    times a withdrawal wins. A person without a statement for a purpose gets the default:
    var('consent_defaults_anonymous') for anonymous visitors, var('consent_defaults_customers')
    for known customers.

    Every profiling model reads this: without analytics consent a person gets no features,
    segments, clusters, scores or churn snapshots; without personalization consent only the
    default content decision. -#}

with

identifiers as (

    select * from {{ ref('int_identifiers_stitched') }}

),

statements as (

    select * from {{ ref('int_consent_statements_unioned') }}

),

persons as (

    select
        person_id,
        max(person_customer_id) is not null as is_customer
    from identifiers
    group by person_id

),

latest_statements as (

    select *
    from statements
    qualify row_number() over (
        partition by person_id, purpose
        order by stated_at desc, is_granted asc, statement_source
    ) = 1

),

consents as (

    select
        persons.person_id,
        persons.is_customer
        {%- for purpose in var('consent_purposes') %},
        coalesce(
            max(case when latest_statements.purpose = '{{ purpose }}' then latest_statements.is_granted end),
            case
                when persons.is_customer then {{ var('consent_defaults_customers')[purpose] }}
                else {{ var('consent_defaults_anonymous')[purpose] }}
            end
        ) as has_{{ purpose }}_consent,
        max(case when latest_statements.purpose = '{{ purpose }}' then latest_statements.stated_at end)
            as {{ purpose }}_stated_at
        {%- endfor %},
        {{ as_of_timestamp() }} as as_of
    from persons
    left join latest_statements on persons.person_id = latest_statements.person_id
    group by persons.person_id, persons.is_customer

)

select * from consents
