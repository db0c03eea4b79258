with

source as (

    select * from {{ source('crm', 'customers') }}

),

renamed as (

    select
        -- ids
        trim(customer_id) as customer_id,

        -- personal data (stops at staging)
        lower(trim(email)) as email,
        first_name,
        last_name,
        phone,

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
