"""Recommendations (group ``ml``): thin assets around ``ml.recommendations``.

- ``ml/recommendation_model`` (nightly): backtests the popularity baselines, item-item and SVD
  on marts.recommendation_backtest_interactions (train up to the cutoff, evaluate on the days
  after it), fits the best model on marts.person_item_interactions, registers it and promotes
  it when its NDCG@10 is not worse than the current model's beyond the tolerance (the churn
  model's rule, ml/registry.py).
- ``ml/person_recommendations`` (nightly and sensor runs): recommendations of the current model
  for every profiled person, ml.person_recommendations. When the current model already made
  the table, a run refreshes only the persons with interactions after the table's as_of (or
  new, or whose consent changed) and drops the persons no longer profiled: no retraining, the
  model scores new behaviour by folding it in.
- ``ml/item_similarities``: the current model's similar products per product.

``ml.recommendations`` (scikit-learn, scipy) and its plots are imported by the assets that use
them: loading the code location does not import them.
"""

from typing import TYPE_CHECKING

import dagster as dg

from ml.config import RecommendationConfig
from ml.schemas import (
    ITEM_SIMILARITIES,
    ITEM_SIMILARITY_COLUMNS,
    PERSON_RECOMMENDATION_COLUMNS,
    PERSON_RECOMMENDATIONS,
    create_table_sql,
)
from orchestration.defs.ml import GROUP, PERSON_CLUSTERS, PERSON_FEATURES
from orchestration.metadata import OWNER, markdown_frame, png_metadata, tidy_metadata
from orchestration.resources import ModelStoreResource, WarehouseResource
from warehouse.connection import table_exists

if TYPE_CHECKING:
    import pandas as pd

    from ml.recommendations import BacktestResult, Recommender

PERSON_ITEM_INTERACTIONS = dg.AssetKey(["marts", "person_item_interactions"])
BACKTEST_INTERACTIONS = dg.AssetKey(["marts", "recommendation_backtest_interactions"])
PRODUCTS = dg.AssetKey(["marts", "products"])
PERSON_CONSENTS = dg.AssetKey(["marts", "person_consents"])
RECOMMENDATION_MODEL = dg.AssetKey(["ml", "recommendation_model"])
PERSON_RECOMMENDATIONS_KEY = dg.AssetKey(["ml", "person_recommendations"])
ITEM_SIMILARITIES_KEY = dg.AssetKey(["ml", "item_similarities"])

PERSONS_SQL = """
SELECT
    features.person_id,
    coalesce(consents.has_personalization_consent, false) AS has_personalization_consent,
    {segment} AS segment
FROM marts.person_features AS features
LEFT JOIN marts.person_consents AS consents USING (person_id)
{clusters_join}
"""


def _read(warehouse: WarehouseResource, sql: str) -> "pd.DataFrame":
    with warehouse.connect(read_only=True) as con:
        return con.execute(sql).df()


def _persons(warehouse: WarehouseResource) -> "pd.DataFrame":
    """Every profiled person with their consent and segment (behavioural cluster, when the
    clustering has run)."""
    with warehouse.connect(read_only=True) as con:
        clustered = table_exists(con, "ml", "person_clusters")
        sql = PERSONS_SQL.format(
            segment="cast(clusters.cluster_id AS VARCHAR)" if clustered else "NULL::VARCHAR",
            clusters_join=(
                "LEFT JOIN ml.person_clusters AS clusters USING (person_id)" if clustered else ""
            ),
        )
        return con.execute(sql).df()


def _plot(context: dg.AssetExecutionContext, name: str, title: str, png: bytes) -> dg.MetadataValue:
    return png_metadata(context.instance, context.run.run_id, context.asset_key, name, title, png)


@dg.asset(
    key=RECOMMENDATION_MODEL,
    deps=[PERSON_ITEM_INTERACTIONS, BACKTEST_INTERACTIONS, PRODUCTS, PERSON_CLUSTERS],
    group_name=GROUP,
    owners=[OWNER],
    kinds={"python", "sklearn"},
    description=(
        "Trains the recommendation model (ml.recommendations): a time-split backtest of the "
        "popularity baselines (overall, per cluster), item-item similarity and a truncated "
        "SVD on marts.recommendation_backtest_interactions, then the best NDCG@10 is fitted on "
        "marts.person_item_interactions, registered, and promoted only if it is not worse than "
        "the current model beyond the tolerance (the decision and its reason are recorded). "
        "The metrics per model and per segment, and plots, are in the metadata."
    ),
)
def recommendation_model(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    models: ModelStoreResource,
) -> dg.MaterializeResult:
    from ml.plots import recommendation_diversity_png, recommendation_metrics_png
    from ml.recommendations import train_recommender

    config = RecommendationConfig()
    interactions = _read(warehouse, "SELECT * FROM marts.person_item_interactions")
    backtest = _read(warehouse, "SELECT * FROM marts.recommendation_backtest_interactions")
    products = _read(warehouse, "SELECT * FROM marts.products")
    if interactions.empty or not backtest["is_holdout_target"].any():
        reason = "no product interactions, or none after the backtest cutoff: nothing to learn"
        context.log.warning("no recommendation model trained: %s", reason)
        return dg.MaterializeResult(metadata={"trained": False, "reason": reason})
    model, result = train_recommender(interactions, backtest, products, _persons(warehouse), config)
    registry = models.recommendation_registry()
    model = registry.register(model)
    decision = registry.promote(
        model, metric=config.promotion_metric, tolerance=config.promotion_tolerance
    )
    return dg.MaterializeResult(
        metadata=tidy_metadata(
            {
                "trained": True,
                "model_version": model.version,
                "model_type": model.model_type,
                "promoted": decision.promoted,
                "promotion_reason": decision.reason,
                "current_model": registry.current_version(),
                **{f"backtest_{name}": value for name, value in model.metrics.items()},
                "backtest_cutoff": str(result.cutoff),
                "metrics_by_model": markdown_frame(result.metrics),
                "metrics_by_segment": markdown_frame(_by_segment(result)),
                "metrics_plot": _plot(
                    context,
                    "metrics_plot",
                    "backtest metrics per model",
                    recommendation_metrics_png(result.metrics),
                ),
                "diversity_plot": _plot(
                    context,
                    "diversity_plot",
                    "coverage and popular share per model",
                    recommendation_diversity_png(result.metrics),
                ),
            }
        )
    )


def _by_segment(result: "BacktestResult") -> "pd.DataFrame":
    frame = result.by_segment
    return frame[frame["model"].isin([result.best_model, "popularity_overall"])]


def _current_model(models: ModelStoreResource) -> "Recommender | None":
    from ml.registry import NoCurrentModelError

    try:
        return models.recommendation_registry().load_current()
    except NoCurrentModelError:
        return None


@dg.asset(
    key=PERSON_RECOMMENDATIONS_KEY,
    deps=[PERSON_ITEM_INTERACTIONS, PERSON_FEATURES, PERSON_CONSENTS, RECOMMENDATION_MODEL],
    group_name=GROUP,
    owners=[OWNER],
    kinds={"python", "duckdb"},
    description=(
        "Up to 10 product recommendations per profiled person from the current recommendation "
        "model, with a score and a reason (ml.person_recommendations, the dbt source of the "
        "has_recommendations segment). Without personalization consent: popular overall only. "
        "When the current model made the table already, only persons with new interactions, "
        "new persons and persons whose consent changed are rescored (sensor runs: no "
        "retraining). Empty, with the reason, until a first model exists."
    ),
)
def person_recommendations(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    models: ModelStoreResource,
) -> dg.MaterializeResult:
    import pandas as pd

    from ml.recommendations import build_interactions, recommend

    table = PERSON_RECOMMENDATIONS.name
    model = _current_model(models)
    if model is None:
        with warehouse.connect() as con:
            con.execute(create_table_sql(table, PERSON_RECOMMENDATION_COLUMNS))
        return dg.MaterializeResult(
            metadata={"dagster/row_count": 0, "reason": "no recommendation model promoted yet"}
        )
    persons = _persons(warehouse)
    with warehouse.connect(read_only=True) as con:
        previous = _previous_state(con, table)
    incremental = previous is not None and previous["model_version"] == model.version
    if incremental:
        refresh = _persons_to_refresh(warehouse, persons, previous["as_of"])
        persons = persons[persons["person_id"].isin(refresh)]
    with warehouse.connect(read_only=True) as con:
        ((as_of,),) = con.execute("SELECT max(as_of) FROM marts.person_features").fetchall()
        con.register("scored", persons[["person_id"]])
        interactions = con.execute(
            "SELECT interactions.* FROM marts.person_item_interactions AS interactions "
            "INNER JOIN scored USING (person_id)"
        ).df()
    matrix = build_interactions(interactions, model.catalogue)
    recs = recommend(model, matrix, persons)
    recs["as_of"] = pd.Timestamp(as_of)
    with warehouse.connect() as con:
        con.execute("BEGIN")
        if not incremental:
            con.execute(create_table_sql(table, PERSON_RECOMMENDATION_COLUMNS))
        else:  # the persons rescored, and those no longer profiled, leave
            con.register("rescored", persons[["person_id"]])
            con.execute(
                f"DELETE FROM {table} WHERE person_id IN (SELECT person_id FROM rescored) "
                "OR person_id NOT IN (SELECT person_id FROM marts.person_features)"
            )
        con.register("recs", recs)
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM recs")
        con.execute("COMMIT")
        ((rows,),) = con.execute(f"SELECT count(*) FROM {table}").fetchall()
    context.log.info(
        "%s recommendations: %d persons scored with model %s",
        "incremental" if incremental else "full",
        len(persons),
        model.version,
    )
    reasons = recs["reason"].str.replace(r" P\S+", " <product>", regex=True)
    return dg.MaterializeResult(
        metadata=tidy_metadata(
            {
                "dagster/row_count": rows,
                "mode": "incremental" if incremental else "full",
                "persons_scored": len(persons),
                "model_version": model.version,
                "behavioural_share": float(recs["is_behavioural"].mean()) if len(recs) else 0.0,
                "reasons": markdown_frame(
                    reasons.value_counts().rename_axis("reason").reset_index()
                ),
            }
        )
    )


def _previous_state(con, table: str) -> dict | None:
    """The model version and as_of of the existing table (None: no table, empty, or mixed)."""
    if not table_exists(con, *table.split(".")):
        return None
    (row,) = con.execute(
        f"SELECT min(model_version), max(model_version), max(as_of), count(*) FROM {table}"
    ).fetchall()
    if not row[3] or row[0] != row[1]:
        return None
    return {"model_version": row[0], "as_of": row[2]}


def _persons_to_refresh(
    warehouse: WarehouseResource, persons: "pd.DataFrame", previous_as_of
) -> set[str]:
    """Persons with an interaction after the table's as_of, persons without recommendations,
    and persons whose personalization consent differs from their recommendations'."""
    with warehouse.connect(read_only=True) as con:
        con.register("persons", persons)
        rows = con.execute(
            f"""
            SELECT person_id FROM marts.person_item_interactions
            WHERE last_interacted_at > ?
            UNION
            SELECT persons.person_id FROM persons
            LEFT JOIN (
                SELECT person_id, bool_or(is_personalized) AS is_personalized
                FROM {PERSON_RECOMMENDATIONS.name} GROUP BY person_id
            ) AS recommended USING (person_id)
            WHERE recommended.person_id IS NULL
               OR recommended.is_personalized <> persons.has_personalization_consent
            """,
            [previous_as_of],
        ).fetchall()
    return {person_id for (person_id,) in rows}


@dg.asset(
    key=ITEM_SIMILARITIES_KEY,
    deps=[RECOMMENDATION_MODEL],
    group_name=GROUP,
    owners=[OWNER],
    kinds={"python", "duckdb"},
    description=(
        "The 10 products most similar to each product from the current recommendation model "
        "(co-occurrence cosine; content neighbours for new products): ml.item_similarities. "
        "Empty until a first model exists."
    ),
)
def item_similarities_table(
    warehouse: WarehouseResource, models: ModelStoreResource
) -> dg.MaterializeResult:
    import pandas as pd

    from ml.recommendations import item_similarities

    model = _current_model(models)
    table = ITEM_SIMILARITIES.name
    frame = pd.DataFrame()
    if model is not None:
        frame = item_similarities(model)
        as_of = model.training_window.get("as_of")
        frame["as_of"] = pd.Timestamp(as_of) if as_of else pd.Timestamp.now()
    with warehouse.connect() as con:
        con.execute("BEGIN")
        con.execute(create_table_sql(table, ITEM_SIMILARITY_COLUMNS))
        if not frame.empty:
            con.register("frame", frame)
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM frame")
        con.execute("COMMIT")
    metadata: dict[str, object] = {"dagster/row_count": len(frame)}
    if model is None:
        metadata["reason"] = "no recommendation model promoted yet"
    else:
        metadata |= {
            "model_version": model.version,
            "content_neighbour_share": float((frame["method"] == "content").mean()),
        }
    return dg.MaterializeResult(metadata=tidy_metadata(metadata))


def build_defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[recommendation_model, person_recommendations, item_similarities_table]
    )
