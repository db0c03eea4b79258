{#- Which persons an incremental run of a per-person aggregate must recompute.

    For models with one row per person computed only from that person's rows and as_of
    (int_events_aggregated_to_persons, int_sessions_aggregated_to_persons). They are incremental
    (delete+insert by person_id) so that a sensor run costs in proportion to its new data plus
    the lookback, and every run equals a full rebuild. Each stored row carries:
    - as_of: the as_of of the last run (persons_aggregate_post_hook() sets it on every row),
    - events_loaded_through: the latest event load that run saw (same),
    - identifiers_fingerprint: a hash of the person's identifiers when the row was computed.

    A person's row is recomputed when
    - an event of theirs was loaded after events_loaded_through (new events, late events),
    - their identifiers changed (a login merged two persons, a shared device split them); a
      person id that no longer exists is deleted by the post-hook,
    - as_of moved forward from the stored as_of to the run's, and one of their timed rows crosses
      a window edge: a row at time t counts in a window of w seconds while
      as_of - w < t <= as_of, so it enters or leaves it when t lies in
      (stored as_of - w, as_of - w]; timed_rows lists (relation, time column, every w the model
      uses for those rows), w = 0 for the rows that become visible,
    - an extra fingerprint (extra_fingerprints: name -> query of person_id, fingerprint) differs
      from the stored column of that name (the orders a cart is matched with),
    - a whole-day count from a stored instant (day_counted_columns: days_before(column, as_of))
      differs between the stored as_of and the run's (days since the last order, tenure).
    When as_of moved back, or the table is empty, every person is recomputed.

-#}
{% macro persons_to_refresh(timed_rows, extra_fingerprints={}, day_counted_columns=[]) -%}

{%- set as_of = as_of_timestamp() -%}

with

stored as (

    select
        max(as_of) as as_of,
        max(events_loaded_through) as events_loaded_through
    from {{ this }}

),

current_fingerprints as (

    {{ identifiers_fingerprints() }}

),

changed as (

    -- new loads
    select person_id
    from {{ ref('int_events_stitched') }}
    where loaded_at > (select coalesce(events_loaded_through, '-infinity'::timestamp) from stored)

    union

    -- identity merges and splits
    select stored_rows.person_id
    from {{ this }} as stored_rows
    left join current_fingerprints on stored_rows.person_id = current_fingerprints.person_id
    where
        stored_rows.identifiers_fingerprint
        is distinct from current_fingerprints.identifiers_fingerprint

    {%- for name, fingerprints in extra_fingerprints.items() %}

    union

    select stored_rows.person_id
    from {{ this }} as stored_rows
    left join ({{ fingerprints }}) as current_rows
        on stored_rows.person_id = current_rows.person_id
    where stored_rows.{{ name }} is distinct from current_rows.{{ name }}

    {%- endfor %}

    {%- for column in day_counted_columns %}

    union

    select stored_rows.person_id
    from {{ this }} as stored_rows, stored
    where
        {{ days_before('stored_rows.' ~ column, 'stored.as_of') }}
        <> {{ days_before('stored_rows.' ~ column, as_of) }}

    {%- endfor %}

    {%- for relation, time_column, window_seconds in timed_rows %}

    union

    -- rows crossing a window edge while as_of moved forward
    select rows.person_id
    from {{ relation }} as rows, stored
    where
        stored.as_of < {{ as_of }}
        and (
            {%- for seconds in window_seconds %}
            {{ 'or ' if not loop.first }}(
                rows.{{ time_column }} > stored.as_of - to_seconds({{ seconds }})
                and rows.{{ time_column }} <= {{ as_of }} - to_seconds({{ seconds }})
            )
            {%- endfor %}
        )

    union

    -- as_of moved back (a backtest), or nothing is stored: everyone
    select rows.person_id
    from {{ relation }} as rows, stored
    where stored.as_of is null or stored.as_of > {{ as_of }}

    {%- endfor %}

)

select distinct person_id from changed where person_id is not null

{%- endmacro %}


{#- One hash per person of the identifiers that form it (int_identifiers_stitched). -#}
{% macro identifiers_fingerprints() -%}
    select
        person_id,
        bit_xor(hash(identifier_type, identifier)) as identifiers_fingerprint
    from {{ ref('int_identifiers_stitched') }}
    group by person_id
{%- endmacro %}


{#- The post-hook of a per-person aggregate (see persons_to_refresh): after each incremental run,
    delete the persons that no longer exist and record the run's as_of (in every column of
    as_of_columns) and latest event load on every row. -#}
{% macro persons_aggregate_post_hook(as_of_columns=['as_of']) -%}
    {%- if is_incremental() -%}
    delete from {{ this }}
    where person_id not in (select person_id from {{ ref('int_identifiers_stitched') }});
    update {{ this }} set
        {%- for column in as_of_columns %}
        {{ column }} = {{ as_of_timestamp() }},
        {%- endfor %}
        events_loaded_through = (select max(loaded_at) from {{ ref('int_events_stitched') }})
    where
        as_of is distinct from {{ as_of_timestamp() }}
        or events_loaded_through
        is distinct from (select max(loaded_at) from {{ ref('int_events_stitched') }})
    {%- endif -%}
{%- endmacro %}


{#- The filter of a per-person aggregate's inputs: in an incremental run, the rows of the
    persons in its CTE persons_to_refresh; in a full build, everything. -#}
{% macro only_persons_to_refresh() -%}
    {%- if is_incremental() -%}
    where person_id in (select person_id from persons_to_refresh)
    {%- endif -%}
{%- endmacro %}
