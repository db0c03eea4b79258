{#- The partitions of a published table that changed since the last publish.

    The publish (orchestration/publish.py, PARTITIONED_TABLES) writes a large table that
    incremental runs change only in part, sessions by session_date, one partition at a time: it
    copies the previous published version and rewrites only the partitions logged here since,
    so a sensor run publishes in proportion to what it changed. A model whose table is published
    that way logs every partition value it deletes or inserts, and null when it rebuilds the whole
    table (a first build or a full refresh).

    The log is serving.unpublished_partitions (table_name, partition_value). The publisher
    creates it and empties it with every publish; until it exists (no publish yet, or one of an
    older version) nothing is logged and the next publish writes everything.
-#}
{% macro unpublished_partitions_relation(relation) -%}
    {{- return(relation.incorporate(
        path={'schema': 'serving', 'identifier': 'unpublished_partitions'}
    )) -}}
{%- endmacro %}

{#- An insert into the log of the partitions `partition_values_query` selects (one column), as
    changed partitions of `relation`; empty when there is no log. Ends with a semicolon. -#}
{% macro log_unpublished_partitions(relation, partition_values_query) -%}
    {%- if execute -%}
        {%- set log = load_relation(unpublished_partitions_relation(relation)) -%}
        {%- if log is not none -%}
insert into {{ log }} (table_name, partition_value)
select distinct '{{ relation.schema }}.{{ relation.identifier }}', partition_value
from ({{ partition_values_query }}) as changed (partition_value);
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
