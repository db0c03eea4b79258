{#- The purchase funnel by day and segment (macros/funnel_steps.sql); segments overlap. -#}

{{ funnel_steps(by_segment=true) }}
