"""Serving: what BI tools read, published atomically (``publish``), and erasure there (``erasure``).

Plain Python, no Dagster: ``orchestration/defs/serving.py`` wraps these in the publish asset.
"""
