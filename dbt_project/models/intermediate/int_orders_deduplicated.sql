{#- One row per order at or before as_of, from the CRM and from purchase events, never twice.

    Web orders reach the warehouse twice: as a CRM order and as a purchase event with the same
    order_id (possibly more than one event, e.g. a reloaded confirmation page). Offline orders
    exist only in the CRM; purchase events the CRM does not know yet exist only on the web. The
    CRM wins for amount, status and time; the web adds the product category, price and the
    discount code. Amounts are in var('reporting_currency'), converted at the order's time
    (macros/exchange_rates.sql); null where the currency has no rate. Purchase events without an order_id count once per event.
-#}

with

crm_orders as (

    select * from {{ ref('stg_crm__orders') }}
    where ordered_at <= {{ as_of_timestamp() }}

),

purchase_events as (

    select * from {{ ref('int_events_stitched') }}
    where is_purchase

),

identifiers as (

    select * from {{ ref('int_identifiers_stitched') }}
    where identifier_type = 'user_id'

),

web_orders as (

    -- the first purchase event of each order
    select
        coalesce(order_id, 'event:' || event_id) as order_id,
        person_id,
        occurred_at,
        revenue,
        currency,
        exchange_rate,
        category,
        price,
        quantity,
        discount_code
    from purchase_events
    qualify row_number() over (
        partition by coalesce(order_id, 'event:' || event_id)
        order by occurred_at, event_id
    ) = 1

),

rate_periods as (

    {{ exchange_rate_periods() }}

),

crm_orders_with_person as (

    -- the CRM amount converted into the reporting currency at the order's time
    {%- set rate = exchange_rate('crm_orders.currency', 'rate_periods.rate') %}
    select
        crm_orders.*,
        identifiers.person_id,
        {{ rate }} as exchange_rate,
        {{ converted_amount('crm_orders.total_amount', rate) }} as converted_amount
    from crm_orders
    inner join identifiers on crm_orders.customer_id = identifiers.identifier
    left join rate_periods
        on {{ exchange_rate_period_matches('rate_periods', 'crm_orders.currency', 'crm_orders.ordered_at') }}

),

combined as (

    select
        coalesce(crm.order_id, web.order_id) as order_id,
        coalesce(crm.person_id, web.person_id) as person_id,
        crm.customer_id,
        case
            when crm.order_id is not null and web.order_id is not null then 'crm_and_web'
            when crm.order_id is not null then 'crm'
            else 'web'
        end as order_source,
        -- a purchase the CRM does not know yet is taken as completed
        coalesce(crm.status, 'completed') as status,
        -- in the reporting currency (purchase events are converted in int_events_stitched)
        coalesce(crm.converted_amount, web.revenue) as amount,
        coalesce(crm.currency, web.currency) as currency,
        coalesce(crm.exchange_rate, web.exchange_rate) as exchange_rate,
        crm.items_count,
        web.category,
        web.price as product_price,
        web.discount_code,
        coalesce(crm.ordered_at, web.occurred_at) as ordered_at
    from crm_orders_with_person as crm
    full outer join web_orders as web on crm.order_id = web.order_id

),

final as (

    select
        *,
        status = 'completed' as is_completed,
        order_source <> 'crm' as is_web_order,
        discount_code is not null as has_discount
    from combined

)

select * from final
