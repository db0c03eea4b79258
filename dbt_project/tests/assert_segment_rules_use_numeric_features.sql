-- Every feature a segment rule uses is a numeric (or boolean) column of person_features, as its
-- contract declares: a misspelt feature would otherwise silently never match.

with

segment_rules as (

    select * from {{ ref('segment_rules') }}

),

known_features as (

    {% for column in numeric_columns('person_features') -%}
    select '{{ column }}' as feature
    {% if not loop.last %}union all{% endif %}
    {% endfor -%}
    {%- if not numeric_columns('person_features') %}select null as feature{% endif %}

)

select segment_rules.*
from segment_rules
left join known_features on segment_rules.feature = known_features.feature
where known_features.feature is null
