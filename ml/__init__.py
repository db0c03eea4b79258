"""Pure-Python machine learning of the warehouse: no Dagster, no database access.

Functions take pandas DataFrames and the config dataclasses of ``ml.config`` and return
results; the Dagster assets in ``orchestration/`` read the tables, call these and store what
comes back.

- ``ml.preprocessing``: feature selection by dtype and the one scikit-learn pipeline shared by
  training and scoring;
- ``ml.clustering``: ``fit_clusters`` (k by silhouette, stable ids across runs, profiles),
  ``assign_clusters``; ``ml.plots`` renders its curves to PNG;
- ``ml.churn``: ``train_churn_model`` (time-based split, two candidates), ``score_churn``;
- ``ml.registry``: ``ModelRegistry`` (file-based versions, guarded promotion);
- ``ml.drift``: Population Stability Index of features and of segment/cluster shares.
"""
