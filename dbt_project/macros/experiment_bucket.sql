{#- The assignment bucket (an integer 0..9999) of a person for one unit of assignment: the first
    8 hex digits of md5(salt | unit | person_id) as an unsigned integer, modulo 10000. The salt
    is var('experiment_assignment_salt'); units: 'holdout' (the personalization holdout),
    'layer:<layer>' (which experiment of a mutual-exclusion layer) and 'experiment:<key>'
    (which variant). The online API computes the same definition in Python
    (serving/online/experiments.py, `assignment_bucket`); a test checks both agree. -#}
{% macro experiment_bucket(unit, person_id) -%}
    cast(
        cast(
            '0x' || substr(
                md5({{ quoted_literal(var('experiment_assignment_salt')) }} || '|' || {{ unit }} || '|' || {{ person_id }}),
                1,
                8
            ) as ubigint
        ) % 10000 as integer
    )
{%- endmacro %}
