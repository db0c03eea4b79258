{#- An instant as a UTC timestamp without time zone. Text without an offset is read as UTC
    (the warehouse session time zone); unparseable text becomes null. -#}
{% macro to_utc_timestamp(column) -%}
    timezone('UTC', try_cast({{ column }} as timestamptz))
{%- endmacro %}
