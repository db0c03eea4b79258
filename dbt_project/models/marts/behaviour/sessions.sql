{#- The sessions of every person, published as intermediate.int_events_sessionized builds them
    (incrementally, equal to a full rebuild; the rules are documented there). -#}

select * from {{ ref('int_events_sessionized') }}
