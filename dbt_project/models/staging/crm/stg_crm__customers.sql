with

source as (

    select * from {{ source('crm', 'customers') }}

),

renamed as (

    select
        -- ids (pseudonymized with the secret key; email, names and phone are not staged:
        -- nothing downstream needs them, erasure finds a person by email in raw)
        {{ pseudonymize('trim(customer_id)') }} as customer_id,

        -- attributes
        upper(country) as country,
        city,
        try_cast(birth_year as integer) as birth_year,
        income_bracket,
        education,
        lower(loyalty_tier) as loyalty_tier,

        -- timestamps (UTC)
        {{ to_utc_timestamp('signup_at') }} as signup_at,
        {{ to_utc_timestamp('updated_at') }} as updated_at

    from source

)

select * from renamed
