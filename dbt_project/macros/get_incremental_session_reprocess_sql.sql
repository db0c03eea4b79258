{#- Incremental strategy `session_reprocess` (used by int_events_sessionized).

    Deletes, per person, the sessions from the person's reprocess_from on (all of them when it is
    null), then inserts the rebuilt sessions the model selected. The delete reads the same windows
    as the model: the temporary table the model's pre-hook computed from the table as it was
    before this run (save_sessions_reprocess_windows).
-#}
{% macro get_incremental_session_reprocess_sql(arg_dict) -%}

{%- set target = arg_dict['target_relation'] -%}
{%- set source = arg_dict['temp_relation'] -%}
{%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}

delete from {{ target }}
using {{ sessions_reprocess_windows_relation() }} as windows
where
    {{ target }}.person_id = windows.person_id
    and (windows.reprocess_from is null or {{ target }}.started_at >= windows.reprocess_from);

insert into {{ target }} ({{ columns }})
select {{ columns }} from {{ source }}

{%- endmacro %}
