"""Fixtures of the online API's tests, defined in online_api_helpers.py (which the test
modules import their helpers from)."""

from online_api_helpers import api_redis, api_server, api_store  # noqa: F401
