"""Ingestion: landing files (``events``) and CRM tables (``crm``) into the ``raw`` schema.

Plain Python and DuckDB SQL, no Dagster: ``orchestration/defs/ingestion.py`` wraps these in assets.
"""
