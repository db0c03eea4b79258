"""Privacy: pseudonymization, consent-independent retention, erasure and suppression.

Consent rules are SQL (dbt_project: int_consents_unioned, person_consents); this package holds
what needs the secret key or touches every layer at once.
"""
