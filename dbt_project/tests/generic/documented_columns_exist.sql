{#- Every column the model's yml documents exists in the relation: for models without an
    enforced contract (a contract checks its columns itself when the model is built). One failing
    row per missing column. -#}
{% test documented_columns_exist(model) %}

{%- set documented = [] -%}
{%- if execute -%}
    {%- for node in graph.nodes.values() -%}
        {%- if node.resource_type == 'model' and node.schema == model.schema
            and (node.alias or node.name) == model.identifier -%}
            {%- for column in node.columns.values() -%}
                {%- do documented.append(column.name | lower) -%}
            {%- endfor -%}
        {%- endif -%}
    {%- endfor -%}
{%- endif -%}

with

documented as (

    {% for column in documented -%}
    select '{{ column }}' as column_name
    {% if not loop.last %}union all{% endif %}
    {% endfor -%}
    {%- if not documented %}select null as column_name where false{% endif %}

),

existing as (

    select lower(column_name) as column_name
    from information_schema.columns
    where
        table_catalog = '{{ model.database }}'
        and table_schema = '{{ model.schema }}'
        and table_name = '{{ model.identifier }}'

)

select documented.column_name
from documented
left join existing on documented.column_name = existing.column_name
where existing.column_name is null

{% endtest %}
