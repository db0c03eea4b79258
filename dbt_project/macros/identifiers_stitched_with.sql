{#- The identifier -> person map int_events_stitched last stitched with.

    Every stored event of int_events_stitched carries the person its identifier had in this map:
    a run stitches new events with the current map and re-stitches the events of every
    identifier whose person differs from this map, then the post-hook saves the current map
    (save_identifiers_stitched_with), in the model's transaction. The next run finds the moved
    identifiers by comparing two maps of one row per identifier instead of reading every stored
    event. Erasure removes a subject's rows from it like from every intermediate table
    (identifier, person_id).
-#}
{% macro identifiers_stitched_with(events_relation) -%}
    {%- if execute -%}
        {{- return(adapter.get_relation(
            database=events_relation.database,
            schema=events_relation.schema,
            identifier=events_relation.identifier ~ '__identifiers',
        )) -}}
    {%- endif -%}
    {{- return(none) -}}
{%- endmacro %}

{% macro save_identifiers_stitched_with(events_relation) -%}
create or replace table
    {{ events_relation.incorporate(path={'identifier': events_relation.identifier ~ '__identifiers'}) }} as
select identifier_type, identifier, person_id
from {{ ref('int_identifiers_stitched') }}
{%- endmacro %}
