with

source as (

    select * from {{ source('ml', 'person_recommendations') }}

),

renamed as (

    select
        person_id,
        rank as recommendation_rank,
        product_id,
        score as recommendation_score,
        reason,
        reason_product_id,
        is_personalized,
        is_behavioural,
        model_version,
        as_of as recommended_as_of

    from source

)

select * from renamed
