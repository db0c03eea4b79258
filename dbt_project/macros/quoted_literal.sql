{#- A SQL string literal for a value from configuration (quotes doubled). -#}
{% macro quoted_literal(value) -%}
    '{{ value | string | replace("'", "''") }}'
{%- endmacro %}


{#- A parenthesised list of string literals for `in (...)`, from a list in configuration. -#}
{% macro quoted_literal_list(values) -%}
    ({%- for value in values -%}{{ quoted_literal(value) }}{{ ", " if not loop.last }}{%- endfor -%})
{%- endmacro %}
