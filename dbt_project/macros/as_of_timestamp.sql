{#- The run's as_of (var as_of, ISO-8601 with offset or Z) as a UTC timestamp without time zone,
    the type every staged timestamp has. A malformed as_of fails the build instead of filtering
    everything out. -#}
{% macro as_of_timestamp() -%}
    timezone('UTC', cast({{ quoted_literal(var('as_of')) }} as timestamptz))
{%- endmacro %}
