with

source as (

    select * from {{ source('crm', 'orders') }}

),

renamed as (

    select
        -- ids
        trim(order_id) as order_id,
        {{ pseudonymize('trim(customer_id)') }} as customer_id,

        -- strings
        upper(currency) as currency,
        lower(status) as status,

        -- numerics
        try_cast(total_amount as decimal(18, 2)) as total_amount,
        try_cast(items_count as integer) as items_count,

        -- timestamps (UTC)
        {{ to_utc_timestamp('ordered_at') }} as ordered_at

    from source

)

select * from renamed
