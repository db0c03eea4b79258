{#- Every amount with a currency has an exchange rate into the reporting currency (the tested
    column, e.g. exchange_rate): one failing row per currency without one, with the number of
    rows whose amounts were left unconverted (null, so no sum adds them). Fix: add rates of that
    currency to seeds/exchange_rates.csv. -#}
{% test has_exchange_rate(model, column_name, currency_column='currency') %}

select
    {{ currency_column }} as currency_without_rate,
    count(*) as amounts_not_converted
from {{ model }}
where {{ currency_column }} is not null and {{ column_name }} is null
group by {{ currency_column }}

{% endtest %}
