{#- The purchase funnel by day over every session (macros/funnel_steps.sql). -#}

{{ funnel_steps(by_segment=false) }}
