{#- The keyed pseudonym (HMAC-SHA256, 32 hex digits) of an identifier. The DuckDB macro
    segwh_pseudonymize holds the secret key: it is a TEMP macro that the dbt-duckdb plugin
    privacy.dbt_plugin (profiles.yml) creates on each of dbt's connections from the environment,
    so the key is never stored in the warehouse and never appears in compiled SQL or dbt logs. -#}
{% macro pseudonymize(column) -%}
    segwh_pseudonymize({{ column }})
{%- endmacro %}
