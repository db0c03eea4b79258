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
    {#- the saved map, or none when there is none yet -#}
    {%- if execute -%}
        {{- return(load_relation(identifiers_stitched_with_relation(events_relation))) -}}
    {%- endif -%}
    {{- return(none) -}}
{%- endmacro %}

{% macro save_identifiers_stitched_with(events_relation) -%}
create or replace table {{ identifiers_stitched_with_relation(events_relation) }} as
select identifier_type, identifier, person_id
from {{ ref('int_identifiers_stitched') }}
{%- endmacro %}

{% macro identifiers_stitched_with_relation(events_relation) -%}
    {{- return(events_relation.incorporate(
        path={'identifier': events_relation.identifier ~ '__identifiers'}
    )) -}}
{%- endmacro %}
