{#- The numeric columns of a model as declared in its yml (its contract): names of columns whose
    data_type is a number or a boolean. Rule tables may reference exactly these. -#}
{% macro numeric_columns(model_name) -%}
    {%- set numeric_types = [
        'tinyint', 'smallint', 'integer', 'int', 'bigint', 'hugeint',
        'float', 'real', 'double', 'decimal', 'numeric', 'boolean'
    ] -%}
    {%- set found = [] -%}
    {#- graph has no nodes at parse time nor in unit tests (they override this macro) -#}
    {%- set nodes = graph.get('nodes', {}) if execute else {} -%}
    {%- for node in nodes.values() -%}
        {%- if node.resource_type == 'model' and node.name == model_name -%}
            {%- for column in node.columns.values() -%}
                {%- set base_type = (column.data_type or '') | lower | replace(' ', '') -%}
                {%- if base_type.split('(')[0] in numeric_types -%}
                    {%- do found.append(column.name) -%}
                {%- endif -%}
            {%- endfor -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(found) }}
{%- endmacro %}


{#- The value of the feature named by `name_expression` (a column holding a feature name) for a
    row of `relation_alias`, as a double: one CASE branch per numeric column of the model. A name
    that is no such column stops the build with an error naming it, rather than never matching:
    a misspelt rule, or a rule table loaded before an upgrade renamed the column (incremental
    runs do not reload seeds; full_build does). -#}
{% macro feature_value(model_name, relation_alias, name_expression) -%}
    {%- set columns = numeric_columns(model_name) -%}
    {%- if columns -%}
    case {{ name_expression }}
        {%- for column in columns %}
        when '{{ column }}' then cast({{ relation_alias }}.{{ column }} as double)
        {%- endfor %}
        else error(
            'a rule names ' || coalesce('"' || {{ name_expression }} || '"', 'no feature')
            || ', which is not a numeric column of {{ model_name }}: correct the rule, or, if '
            || 'an upgrade renamed the column (README: upgrade notes), rename it in the seed '
            || 'and run the full_build job once (sensor runs do not reload seeds)'
        )
    end
    {%- else -%}
    cast(null as double)
    {%- endif -%}
{%- endmacro %}
