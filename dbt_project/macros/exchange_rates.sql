{#- Money in the reporting currency (var('reporting_currency')).

    seeds/exchange_rates.csv holds, per currency, the rate (units of the reporting currency per
    unit of that currency) valid from a date until the next row of the same currency. An
    amount converts at the rate valid at its time; an amount without a currency, or in the
    reporting currency, keeps its value (rate 1); an amount in a currency without a rate for
    that time gets exchange_rate null and a converted amount null, so no sum adds it
    unconverted (the has_exchange_rate tests report such amounts by currency).
-#}

{#- The rate periods: (currency, valid_from, valid_to, rate), valid_to exclusive. -#}
{% macro exchange_rate_periods() -%}
    select
        upper(trim(currency)) as currency,
        cast(valid_from as timestamp) as valid_from,
        coalesce(
            lead(cast(valid_from as timestamp)) over (
                partition by upper(trim(currency)) order by valid_from
            ),
            cast('infinity' as timestamp)
        ) as valid_to,
        cast(rate as decimal(18, 6)) as rate
    from {{ ref('exchange_rates') }}
{%- endmacro %}

{#- The join condition of a rate period (alias `periods`) with an amount's currency and time. -#}
{% macro exchange_rate_period_matches(periods, currency, at) -%}
    {{ periods }}.currency = {{ currency }}
    and {{ at }} >= {{ periods }}.valid_from
    and {{ at }} < {{ periods }}.valid_to
{%- endmacro %}

{#- The rate that applies to an amount in `currency` given the matched period's rate. -#}
{% macro exchange_rate(currency, period_rate) -%}
    case
        when {{ currency }} is null or {{ currency }} = {{ quoted_literal(var('reporting_currency')) }}
            then cast(1 as decimal(18, 6))
        else {{ period_rate }}
    end
{%- endmacro %}

{#- An amount converted with a rate, as money (decimal(18, 2)). -#}
{% macro converted_amount(amount, rate) -%}
    cast(round({{ amount }} * {{ rate }}, 2) as decimal(18, 2))
{%- endmacro %}
