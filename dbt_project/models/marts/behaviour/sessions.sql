{#- The sessions of every person, published as intermediate.int_events_sessionized builds them
    (incrementally, equal to a full rebuild; the rules are documented there), with the count of
    events named as a count. -#}

select * rename (events as event_count)
from {{ ref('int_events_sessionized') }}
