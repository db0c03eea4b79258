{#- The keyed pseudonym (HMAC-SHA256, 32 hex digits) of an identifier. The DuckDB macro
    segwh_pseudonymize holds the secret key; privacy/pseudonyms.py installs it in
    the warehouse before every dbt run, so the key never appears in compiled SQL or dbt logs. -#}
{% macro pseudonymize(column) -%}
    segwh_pseudonymize({{ column }})
{%- endmacro %}
