{#- Implicit feedback per person and product as of as_of (macro person_item_interaction_rows):
    what the recommendation models in ml/ learn from and score. -#}

with

interactions as (

    {{ person_item_interaction_rows(as_of_timestamp()) }}

),

final as (

    select
        person_id,
        product_id,
        views,
        add_to_carts,
        purchases,
        interaction_weight,
        first_interacted_at,
        last_interacted_at,
        {{ as_of_timestamp() }} as as_of
    from interactions

)

select * from final
