"""The warehouse connection and every deployment setting: the one module every layer may import.

- ``warehouse.settings``: every environment variable, its default, and how it reaches dbt;
- ``warehouse.connection``: opening the DuckDB warehouse file with the project's session settings.
"""
