"""One module per layer, each with ``build_defs()``: its assets, checks and jobs
(``automation``: jobs, schedules and sensors of the whole graph)."""
