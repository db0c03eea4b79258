{#- The relation has no column named like personal data (var('personal_data_columns'): email,
    names, phone, ip, raw user agent). Personal data stops at staging: every intermediate model
    and mart carries this test. -#}
{% test has_no_personal_data(model) %}

select column_name
from information_schema.columns
where
    table_catalog = '{{ model.database }}'
    and table_schema = '{{ model.schema }}'
    and table_name = '{{ model.identifier }}'
    and lower(column_name) in {{ quoted_literal_list(var('personal_data_columns')) }}

{% endtest %}
