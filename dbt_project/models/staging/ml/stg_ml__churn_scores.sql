with

source as (

    select * from {{ source('ml', 'churn_scores') }}

),

renamed as (

    select
        person_id,
        churn_probability,
        risk_band,
        is_at_risk,
        model_version,
        as_of as scored_as_of

    from source

)

select * from renamed
