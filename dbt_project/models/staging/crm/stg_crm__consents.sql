with

source as (

    select * from {{ source('crm', 'consents') }}

),

renamed as (

    select
        {{ pseudonymize('trim(customer_id)') }} as customer_id,
        lower(trim(purpose)) as purpose,
        try_cast(granted as boolean) as is_granted,
        {{ to_utc_timestamp('updated_at') }} as updated_at

    from source

)

select * from renamed
