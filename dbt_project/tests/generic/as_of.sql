{#- Tests against the run's as_of (macros/as_of_timestamp.sql), read when the test runs: a model
    computed at as_of sees nothing after it. -#}

{#- No value of the column lies after as_of. -#}
{% test at_or_before_as_of(model, column_name) %}

select {{ column_name }}
from {{ model }}
where {{ column_name }} > {{ as_of_timestamp() }}

{% endtest %}


{#- Every value of the column is the run's as_of (the instant the model was computed at). -#}
{% test equal_to_as_of(model, column_name) %}

select {{ column_name }}
from {{ model }}
where {{ column_name }} is distinct from {{ as_of_timestamp() }}

{% endtest %}
