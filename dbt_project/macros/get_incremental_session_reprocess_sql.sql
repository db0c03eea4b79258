{#- Incremental strategy `session_reprocess` (used by the sessions model).

    Deletes, per person, the sessions from the person's reprocess_from on (all of them when it is
    null), then inserts the rebuilt sessions the model selected. The delete reads the same windows
    as the model: the temporary table the model's pre-hook computed from the table as it was
    before this run (save_sessions_reprocess_windows).

    Most rebuilt sessions equal the ones they replace (a person rebuilt in full for one late
    event keeps all other sessions). The session dates of the rows that really changed (replaced
    and rebuilt rows compared column for column) are logged as unpublished partitions
    (macros/unpublished_partitions.sql), so the publish rewrites only those dates.
-#}
{% macro get_incremental_session_reprocess_sql(arg_dict) -%}

{%- set target = arg_dict['target_relation'] -%}
{%- set source = arg_dict['temp_relation'] -%}
{%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
{%- set windows = sessions_reprocess_windows_relation() -%}
{%- set in_windows -%}
    {{ target }}.person_id = windows.person_id
    and (windows.reprocess_from is null or {{ target }}.started_at >= windows.reprocess_from)
{%- endset -%}
{%- set log = unpublished_partitions_log(target) -%}
{%- set replaced = 'temp.main.sessions_replaced' -%}

{% if log is not none -%}
create or replace temporary table sessions_replaced as
select * from {{ target }}
where exists (select 1 from {{ windows }} as windows where {{ in_windows }});
{%- endif %}

delete from {{ target }}
using {{ windows }} as windows
where {{ in_windows }};

insert into {{ target }} ({{ columns }})
select {{ columns }} from {{ source }};

{% if log is not none -%}
{%- set changed_rows -%}
    (select {{ columns }} from {{ replaced }} except all select {{ columns }} from {{ source }})
    union all
    (select {{ columns }} from {{ source }} except all select {{ columns }} from {{ replaced }})
{%- endset -%}
{{ log_unpublished_partitions(
    target, 'select session_date from (' ~ changed_rows ~ ') as changed_rows'
) }};

drop table {{ replaced }};
{%- endif %}

{%- endmacro %}
