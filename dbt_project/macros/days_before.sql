{#- Whole days from a timestamp back from a later instant: 0 for (as_of - 1 day, as_of], 1 for
    the day before, and so on. Buckets of this kind line up with snapshots taken a whole number
    of days before as_of. -#}
{% macro days_before(column, instant) -%}
    cast(floor((epoch({{ instant }}) - epoch({{ column }})) / 86400) as integer)
{%- endmacro %}
