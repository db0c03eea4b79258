{#- Which person each identifier belongs to, for every profiled person, as of as_of: the lookup
    index of the online API (a website knows a visitor by a cookie or a customer id) and a join
    key for analysts who pseudonymize their own ids with the same key. Identifiers are keyed
    pseudonyms; a shared device keeps its own person (int_identifiers_stitched). -#}

with

identifiers as (

    select * from {{ ref('int_identifiers_stitched') }}

),

profiled_persons as (

    select person_id from {{ ref('person_features') }}

),

final as (

    select
        identifiers.identifier,
        identifiers.identifier_type,
        identifiers.person_id
    from identifiers
    inner join profiled_persons on identifiers.person_id = profiled_persons.person_id
    -- an identifier seen as both a user id and an anonymous id names one person: the user's
    qualify row_number() over (
        partition by identifiers.identifier
        order by (identifiers.identifier_type = 'user_id') desc, identifiers.person_id
    ) = 1

)

select * from final
