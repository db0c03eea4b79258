{#- One person id for every identifier that belongs together (identity stitching).

    Nodes are identifiers: anonymous ids (cookies, devices) and user ids (CRM customer ids).
    An event carrying both an anonymous id and a user id links them. Persons are the connected
    components of that graph, found transitively in one query by label propagation: every node
    starts with its own label and repeatedly takes the smallest label among its neighbours until
    nothing changes (DuckDB's recursive CTE with USING KEY keeps one label per node, so the work
    per round is proportional to the labels that changed, not to all paths).

    Labels sort customers first, so a person containing a customer is named after its smallest
    customer id and keeps its id when new devices join. Anonymous ids seen with more than
    var('identity_max_user_ids_per_anonymous_id') user ids are shared devices and link nobody.

    person_assigned_at: when (run_started_at of the dbt run) the identifier got the person it
    has now. Each build compares with the table as it was before it (the model's own previous
    state): an identifier that keeps its person keeps the time, a new or moved one gets this
    run's. int_events_stitched re-stitches the events of the identifiers assigned after its own
    last run, so finding them costs one pass over the identifiers, not over the stored events.
-#}

{#- (this is none in dbt unit tests) -#}
{%- set previous = load_relation(this) if execute and this is not none else none -%}
{%- set has_previous = previous is not none and 'person_assigned_at' in (
    adapter.get_columns_in_relation(previous) | map(attribute='name') | list
) -%}

with recursive

identifier_pairs as (

    -- every distinct (anonymous id, user id) combination seen on an event at or before as_of
    -- (either may be null); int_identifier_pairs keeps them incrementally
    select
        anonymous_id,
        user_id
    from {{ ref('int_identifier_pairs') }}
    where first_seen_at <= {{ as_of_timestamp() }}

),

customers as (

    select customer_id
    from {{ ref('stg_crm__customers') }}
    where
        customer_id is not null
        and (signup_at is null or signup_at <= {{ as_of_timestamp() }})

),

orders as (

    select customer_id
    from {{ ref('stg_crm__orders') }}
    where ordered_at <= {{ as_of_timestamp() }}

),

identifiers as (

    select distinct 'anonymous_id' as identifier_type, anonymous_id as identifier
    from identifier_pairs
    where anonymous_id is not null

    union

    select distinct 'user_id' as identifier_type, user_id as identifier
    from identifier_pairs
    where user_id is not null

    union

    select 'user_id' as identifier_type, customer_id as identifier
    from customers

    union

    select 'user_id' as identifier_type, customer_id as identifier
    from orders

),

observed_links as (

    select
        anonymous_id,
        user_id
    from identifier_pairs
    where anonymous_id is not null and user_id is not null

),

shared_devices as (

    select anonymous_id
    from observed_links
    group by anonymous_id
    having count(*) > {{ var('identity_max_user_ids_per_anonymous_id') }}

),

links as (

    select observed_links.*
    from observed_links
    left join shared_devices on observed_links.anonymous_id = shared_devices.anonymous_id
    where shared_devices.anonymous_id is null

),

nodes as (

    select
        identifier_type,
        identifier,
        -- '1:' sorts before '2:': the smallest label of a person is a customer id if it has one
        case identifier_type when 'user_id' then '1:' else '2:' end || identifier as node
    from identifiers

),

edges as (

    select '2:' || anonymous_id as from_node, '1:' || user_id as to_node
    from links

    union all

    select '1:' || user_id as from_node, '2:' || anonymous_id as to_node
    from links

),

components (node, component) using key (node) as (

    select node, node as component
    from nodes

    union

    -- nodes whose label changed in the last round pass it to neighbours with a larger label
    select
        edges.to_node as node,
        min(components.component) as component
    from components
    inner join edges on components.node = edges.from_node
    inner join recurring.components as current_labels on edges.to_node = current_labels.node
    group by edges.to_node
    having min(components.component) < min(current_labels.component)

),

stitched as (

    select
        nodes.identifier_type,
        nodes.identifier,
        {{ dbt.hash('components.component') }} as person_id,
        case
            when components.component like '1:%' then substr(components.component, 3)
        end as person_customer_id,
        shared_devices.anonymous_id is not null as is_shared_device
    from nodes
    inner join components on nodes.node = components.node
    left join shared_devices
        on nodes.identifier_type = 'anonymous_id' and nodes.identifier = shared_devices.anonymous_id

),

{% if has_previous %}

previous_persons as (

    -- this table before this build
    select identifier_type, identifier, person_id, person_assigned_at from {{ previous }}

),

{% endif %}

final as (

    select
        stitched.*,
        {%- if has_previous %}
        case
            when previous_persons.person_id = stitched.person_id
                then previous_persons.person_assigned_at
            else {{ run_started_at_timestamp() }}
        end as person_assigned_at
        {%- else %}
        {{ run_started_at_timestamp() }} as person_assigned_at
        {%- endif %}
    from stitched
    {%- if has_previous %}
    left join previous_persons
        on
            stitched.identifier_type = previous_persons.identifier_type
            and stitched.identifier = previous_persons.identifier
    {%- endif %}

)

select * from final
