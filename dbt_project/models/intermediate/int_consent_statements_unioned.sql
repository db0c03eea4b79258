{#- Every consent statement of every person at or before as_of: the CRM consents table and
    the events of taxonomy role consent_update (properties.purpose, properties.granted),
    attributed to the person of the customer id or of the event. Statements without a purpose or a readable yes/no are
    ignored. -#}

{%- set as_of = as_of_timestamp() -%}

with

identifiers as (

    select * from {{ ref('int_identifiers_stitched') }}

),

crm_consents as (

    select * from {{ ref('stg_crm__consents') }}

),

consent_events as (

    select * from {{ ref('int_events_stitched') }}
    where is_consent_update

),

crm_statements as (

    select
        identifiers.person_id,
        crm_consents.purpose,
        crm_consents.is_granted,
        crm_consents.updated_at as stated_at,
        'crm' as statement_source
    from crm_consents
    inner join identifiers
        on
            identifiers.identifier_type = 'user_id'
            and identifiers.identifier = crm_consents.customer_id
    where
        crm_consents.updated_at <= {{ as_of }}
        and crm_consents.purpose is not null
        and crm_consents.is_granted is not null

),

event_statements as (

    select
        person_id,
        consent_purpose as purpose,
        consent_is_granted as is_granted,
        occurred_at as stated_at,
        'event' as statement_source
    from consent_events
    where consent_purpose is not null and consent_is_granted is not null

),

unioned as (

    select * from crm_statements
    union all
    select * from event_statements

)

select * from unioned
