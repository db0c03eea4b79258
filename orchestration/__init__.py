"""Dagster only: the code location (definitions.py merging one defs module per layer), resources,
the dbt project and translator, the expectation checks and the ``segwh`` CLI. The domain code it
runs lives in the layers' own packages (ingestion, privacy, serving, ml, expectations, dbt_project);
nothing imports this package.

Every process that runs the project's code imports this package first (the CLI, Dagster's code
server and run workers), so this is where files become private: everything the project writes
(warehouse, published files, models, landing files from the collector, Dagster's storage when
the CLI creates it) is created readable by its owner only (0600 files, 0700 folders). BI tools
read the published files as the same user, or through PostgreSQL.
"""

import os

PRIVATE_UMASK = 0o077
os.umask(PRIVATE_UMASK)
