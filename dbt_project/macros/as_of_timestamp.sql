{#- The run's as_of as a UTC timestamp without time zone, the type every staged timestamp has. A
    malformed as_of fails the build instead of filtering everything out. -#}
{% macro as_of_timestamp() -%}
    timezone('UTC', cast({{ quoted_literal(as_of_value()) }} as timestamptz))
{%- endmacro %}


{#- The run's as_of (ISO-8601 with offset or Z): var('as_of') when given (dbt unit tests, runs by
    hand), else the environment variable SEGWH_DBT_AS_OF, which Dagster sets for every dbt
    invocation.

    The environment is read only while dbt executes, never while it parses: a new as_of on every
    run then leaves dbt's partial parsing intact, where a changed --vars makes dbt parse the whole
    project again (2.5 to 3 s per invocation, two invocations per run). -#}
{% macro as_of_value() -%}
    {%- set value = var('as_of', none) -%}
    {%- if value is none and execute -%}
        {%- set value = env_var('SEGWH_DBT_AS_OF', '') -%}
        {%- if not value -%}
            {{ exceptions.raise_compiler_error(
                "as_of is not set: pass --vars '{as_of: \"2026-11-01T00:00:00Z\"}' "
                ~ "or set SEGWH_DBT_AS_OF (Dagster sets it for its runs)") }}
        {%- endif -%}
    {%- endif -%}
    {{ return(value if value is not none else '1970-01-01T00:00:00Z') }}
{%- endmacro %}


{#- When this dbt invocation started (run_started_at, UTC), as a timestamp without time zone:
    int_identifiers_stitched records with it when an identifier got its person, and
    int_events_stitched when it stitched an event, so that the next run of the events finds the
    identifiers that moved since. (Not as_of: it orders runs, not data.) -#}
{% macro run_started_at_timestamp() -%}
    cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as timestamp)
{%- endmacro %}
