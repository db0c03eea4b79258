{#- dbt's `where` test config, plus one placeholder: `__loaded_in_this_run__`.

    A data test on an event table configured with `where: __loaded_in_this_run__` checks only
    the rows of the load the environment variable SEGWH_DBT_TESTED_LOAD_ID names (the sensor's
    incremental runs: the dbt asset sets it to the run id, which is the load_id of the events the
    run loaded), so its cost follows the new events; without the variable (the nightly build, runs
    by hand) it checks the whole table. Only for tests that stay sound on new rows alone: row
    checks (not_null) and the uniqueness of event ids, which ingestion already deduplicates
    against every earlier load. Read while dbt executes, so a new run id keeps partial parsing.
-#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where') or '' -%}
    {%- if '__loaded_in_this_run__' in where -%}
        {%- set load_id = env_var('SEGWH_DBT_TESTED_LOAD_ID', '') if execute else '' -%}
        {%- set where = where | replace(
            '__loaded_in_this_run__',
            'load_id = ' ~ quoted_literal(load_id) if load_id else 'true'
        ) -%}
    {%- endif -%}
    {%- if where -%}
        {{ return('(select * from ' ~ relation ~ ' where ' ~ where ~ ') dbt_subquery') }}
    {%- endif -%}
    {{ return(relation) }}
{%- endmacro %}
