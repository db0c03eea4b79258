"""Privacy: keyed pseudonyms of identifiers, erasure of a person with the suppression list.

Consent rules are SQL (dbt_project: int_consent_statements_unioned, marts.person_consents); the
retention asset and the erasure job are in orchestration/assets/privacy.py. This package holds
what needs the secret key or touches every layer at once.
"""
