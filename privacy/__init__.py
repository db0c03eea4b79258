"""Privacy: keyed pseudonyms (``pseudonyms``), the suppression list of erased persons
(``suppression``), erasure from the warehouse (``erasure``) and raw-event retention
(``retention``).

Consent rules are SQL (dbt_project: int_consent_statements_unioned, marts.person_consents);
erasure from the published outputs is in ``serving.erasure``. No Dagster here.
"""
