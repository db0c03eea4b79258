{#- A UTC timestamp (without time zone) as wall-clock time in the given IANA time zone. -#}
{% macro local_timestamp(column, time_zone) -%}
    timezone({{ quoted_literal(time_zone) }}, timezone('UTC', {{ column }}))
{%- endmacro %}
