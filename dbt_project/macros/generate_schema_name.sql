{#- Models land in the schema their folder configures (staging, intermediate, marts), not in
    <target_schema>_<custom_schema>: the warehouse has one environment per file. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
