"""Dagster only: the code location (definitions.py merging one defs module per layer), resources,
the dbt project and translator, the expectation checks and the ``segwh`` CLI. The domain code it
runs lives in the layers' own packages (ingestion, privacy, serving, ml, expectations, dbt_project);
nothing imports this package."""
