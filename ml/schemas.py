"""The tables the ml package writes: the one declaration of their columns, DuckDB types and
documentation.

The Dagster assets create ``ml.churn_scores`` from this declaration (``create_table_sql``), and so
does anything that builds the dbt project without running them (dbt reads ``ml.churn_scores``
as the declared source ``source('ml', 'churn_scores')``, whose columns are not listed again).
The descriptions are written for BI analysts: the publish copies them into every published
output (table and column comments, Parquet metadata) and the data dictionary lists them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MlColumn:
    type: str  # DuckDB type
    description: str


@dataclass(frozen=True)
class MlTable:
    name: str  # schema.table in the warehouse
    description: str
    columns: dict[str, MlColumn]


CHURN_SCORES = MlTable(
    "ml.churn_scores",
    "Churn risk of every person scored at the run's as_of (the instant the run computes its "
    "results at): one row per person, from the churn model in use at that time. A person "
    "churns when they neither start a session nor place an order in the following days (the "
    "churn horizon; `segwh config` shows it). Persons without any activity before as_of are "
    "not scored.",
    {
        "person_id": MlColumn("VARCHAR", "The person (the key of person_features)."),
        "churn_probability": MlColumn(
            "DOUBLE",
            "Estimated probability (0 to 1) that the person churns within the churn horizon "
            "after as_of.",
        ),
        "risk_band": MlColumn(
            "VARCHAR",
            "churn_probability in words: low, medium or high (the band edges are settings; "
            "`segwh config` shows them).",
        ),
        "is_at_risk": MlColumn(
            "BOOLEAN",
            "True when churn_probability reaches the at-risk threshold; these persons form the "
            "churn_at_risk segment. By default the threshold is the churn probability of the "
            "top decile of scored persons (the rule is a setting; `segwh config` shows it).",
        ),
        "model_version": MlColumn(
            "VARCHAR", "Version of the churn model that produced the score (training time and id)."
        ),
        "as_of": MlColumn("TIMESTAMP", "The instant (UTC) the score describes."),
    },
)

PERSON_CLUSTERS = MlTable(
    "ml.person_clusters",
    "The behavioural cluster of every profiled person at the run's as_of: one row per person. "
    "Clusters group persons with similar behaviour (visits, carts, orders, spend, ...); a "
    "cluster keeps its id from run to run as long as it stays recognisably the same group. "
    "What each cluster stands for is in cluster_profiles.",
    {
        "person_id": MlColumn("VARCHAR", "The person (the key of person_features)."),
        "cluster_id": MlColumn(
            "BIGINT", "The person's cluster (the key of cluster_profiles); stable across runs."
        ),
        "distance_to_centroid": MlColumn(
            "DOUBLE",
            "How far the person lies from the centre of their cluster, in standardised feature "
            "units: small values are typical members, large values borderline ones.",
        ),
        "cluster_name": MlColumn(
            "VARCHAR",
            "Short name of the cluster from its most distinctive features (as in "
            "cluster_profiles.name).",
        ),
        "as_of": MlColumn("TIMESTAMP", "The instant (UTC) the clustering describes."),
    },
)

CLUSTER_PROFILES = MlTable(
    "ml.cluster_profiles",
    "What each behavioural cluster stands for at the run's as_of: one row per cluster, with its "
    "size and the features that set it apart from everyone else.",
    {
        "cluster_id": MlColumn("BIGINT", "The cluster; person_clusters.cluster_id refers to it."),
        "name": MlColumn(
            "VARCHAR",
            "Short name from the cluster's most distinctive features, e.g. 'high "
            "lifetime_spend, low days_since_last_session'.",
        ),
        "size": MlColumn("BIGINT", "Number of persons in the cluster."),
        "share": MlColumn("DOUBLE", "Share of all clustered persons in the cluster (0 to 1)."),
        "is_small": MlColumn(
            "BOOLEAN",
            "True when the cluster holds less than the minimum share of persons (a setting; "
            "`segwh config` shows it): treat its profile with care.",
        ),
        "top_features": MlColumn(
            "VARCHAR",
            "The most distinctive features, '; '-separated: high or low, how far from the "
            "average in standard deviations, and the cluster's and everyone's mean.",
        ),
        "mean_distance_to_centroid": MlColumn(
            "DOUBLE",
            "Average distance_to_centroid of the cluster's persons: how tight the cluster is.",
        ),
        "as_of": MlColumn("TIMESTAMP", "The instant (UTC) the clustering describes."),
    },
)

CUSTOMER_LIFETIME_VALUES = MlTable(
    "ml.customer_lifetime_values",
    "Customer lifetime value of every person scored at the run's as_of: the completed orders "
    "the person is expected to place in the next horizon_days (a BG/NBD model of their order "
    "history) times the expected value of an order (a Gamma-Gamma model: their own average "
    "order value, shrunk towards everyone's). Undiscounted. One row per person of the churn "
    "scoring population.",
    {
        "person_id": MlColumn("VARCHAR", "The person (the key of person_features)."),
        "expected_orders": MlColumn(
            "DOUBLE", "Expected number of completed orders in the horizon after as_of."
        ),
        "expected_order_value": MlColumn(
            "DOUBLE", "Expected value of one order (the shop's currency)."
        ),
        "p_alive": MlColumn(
            "DOUBLE",
            "Probability (0 to 1) that the person is still an active buyer at as_of, from "
            "their order history alone.",
        ),
        "clv": MlColumn(
            "DOUBLE",
            "Expected spend in the horizon after as_of: expected_orders x expected_order_value.",
        ),
        "is_top_value": MlColumn(
            "BOOLEAN",
            "True for the persons with the highest clv, a fixed share of them (the top 10% by "
            "default; `segwh config` shows it).",
        ),
        "horizon_days": MlColumn("INTEGER", "The days after as_of the value covers."),
        "model_version": MlColumn(
            "VARCHAR", "Version of the CLV models (fit date and an id of their parameters)."
        ),
        "as_of": MlColumn("TIMESTAMP", "The instant (UTC) the value describes."),
    },
)

EXPERIMENT_RESULTS = MlTable(
    "ml.experiment_results",
    "The results of every experiment with exposed persons, at the run's as_of: one row per "
    "experiment, metric and variant (the control included, without lift). Persons count from "
    "their first exposure, in the variant of that exposure. Lifts compare a variant with the "
    "control: conversion with a two-proportion z-test, revenue, orders and sessions with "
    "Welch's t-test, both plain and with CUPED (the same metric before the exposure as "
    "covariate). p-values are corrected for several comparisons (Holm: the primary metric's "
    "variants, and the secondary metrics together). A result is significant only when every "
    "variant has its planned persons (no early peeking) and the experiment passed the "
    "sample-ratio check; an experiment failing that check (status blocked_srm) shows no lift "
    "or p-value at all. README, Experiments.",
    {
        "experiment_key": MlColumn("VARCHAR", "The experiment (its key among the experiments)."),
        "metric": MlColumn("VARCHAR", "conversion, revenue, orders or sessions (per person)."),
        "is_primary_metric": MlColumn("BOOLEAN", "The experiment's primary metric."),
        "variant": MlColumn("VARCHAR", "The variant this row describes."),
        "is_control": MlColumn("BOOLEAN", "The variant is the control (no lift of its own)."),
        "persons": MlColumn("BIGINT", "Exposed persons in the variant."),
        "expected_share": MlColumn("DOUBLE", "The variant's configured share of persons."),
        "observed_share": MlColumn("DOUBLE", "The variant's actual share of exposed persons."),
        "mean": MlColumn("DOUBLE", "Mean of the metric per person in the variant."),
        "variance": MlColumn("DOUBLE", "Sample variance of the metric in the variant."),
        "control_mean": MlColumn("DOUBLE", "Mean of the metric in the control."),
        "test_method": MlColumn(
            "VARCHAR", "two-proportion z-test (conversion) or Welch t-test (the others)."
        ),
        "absolute_lift": MlColumn("DOUBLE", "mean minus control_mean."),
        "absolute_lift_ci_low": MlColumn("DOUBLE", "Lower end of the 95 % interval of it."),
        "absolute_lift_ci_high": MlColumn("DOUBLE", "Upper end of the 95 % interval of it."),
        "relative_lift": MlColumn("DOUBLE", "absolute_lift / control_mean (0.1 = +10 %)."),
        "relative_lift_ci_low": MlColumn(
            "DOUBLE", "Lower end of its 95 % interval (delta method)."
        ),
        "relative_lift_ci_high": MlColumn("DOUBLE", "Upper end of its 95 % interval."),
        "p_value": MlColumn("DOUBLE", "Two-sided p-value of the plain comparison."),
        "p_value_adjusted": MlColumn("DOUBLE", "p_value corrected for multiple comparisons."),
        "cuped_absolute_lift": MlColumn(
            "DOUBLE", "The lift after the CUPED adjustment (same expectation, less noise)."
        ),
        "cuped_ci_low": MlColumn("DOUBLE", "Lower end of the 95 % interval of the CUPED lift."),
        "cuped_ci_high": MlColumn("DOUBLE", "Upper end of the 95 % interval of the CUPED lift."),
        "cuped_p_value": MlColumn("DOUBLE", "Two-sided p-value of the CUPED comparison."),
        "cuped_p_value_adjusted": MlColumn(
            "DOUBLE", "cuped_p_value corrected; decides is_significant."
        ),
        "cuped_variance_reduction": MlColumn(
            "DOUBLE",
            "Share of the metric's variance CUPED removed (0.2 = 20 % less variance) with the "
            "pre-exposure period.",
        ),
        "correction": MlColumn("VARCHAR", "The multiple-comparison correction (holm)."),
        "srm_p_value": MlColumn(
            "DOUBLE", "Chi-square p-value of the persons per variant against the configuration."
        ),
        "is_srm_blocked": MlColumn(
            "BOOLEAN", "srm_p_value is below the threshold: the results are withheld."
        ),
        "planned_persons_per_variant": MlColumn("BIGINT", "The planned sample per variant."),
        "has_reached_planned_size": MlColumn(
            "BOOLEAN",
            "Every variant has its planned persons (only then can a lift be significant).",
        ),
        "minimum_detectable_effect": MlColumn(
            "DOUBLE", "The relative effect the experiment is planned to detect."
        ),
        "power_at_mde": MlColumn(
            "DOUBLE",
            "Probability of detecting the minimum detectable effect with the persons so far.",
        ),
        "persons_needed_for_mde": MlColumn(
            "DOUBLE", "Persons per variant needed for the planned power at that effect."
        ),
        "days_to_mde": MlColumn(
            "DOUBLE", "Days still needed to have them at the enrollment rate so far (0: reached)."
        ),
        "is_significant": MlColumn("BOOLEAN", "The variant differs significantly from control."),
        "status": MlColumn(
            "VARCHAR",
            "control, significant, not_significant, collecting (below the planned size), "
            "insufficient_data or blocked_srm.",
        ),
        "as_of": MlColumn("TIMESTAMP", "The instant (UTC) the analysis describes."),
    },
)

PERSON_RECOMMENDATIONS = MlTable(
    "ml.person_recommendations",
    "Product recommendations for every profiled person at the run's as_of: up to 10 rows per "
    "person, best first, from the recommendation model in use (trained on behaviour: product "
    "views, adds to cart and purchases). Persons without personalization consent get only the "
    "products popular with everyone; persons with too little history the products popular in "
    "their cluster; products the person bought are not recommended again unless their category "
    "is a repeat purchase.",
    {
        "person_id": MlColumn("VARCHAR", "The person (the key of person_features)."),
        "rank": MlColumn("BIGINT", "1 for the best recommendation of the person, then 2, 3, ..."),
        "product_id": MlColumn("VARCHAR", "The recommended product (the key of products)."),
        "score": MlColumn(
            "DOUBLE",
            "How strongly the model recommends the product; comparable within one person's "
            "list only (negative: a popularity fallback).",
        ),
        "reason": MlColumn(
            "VARCHAR",
            "Why, in words: 'bought together with P123', 'similar to P123 you viewed', 'matches "
            "your taste', 'popular in your segment' or 'popular overall'.",
        ),
        "reason_product_id": MlColumn(
            "VARCHAR",
            "The person's own product the reason names; empty for popularity reasons.",
        ),
        "is_personalized": MlColumn(
            "BOOLEAN",
            "True when the person consents to personalization (their behaviour may be used); "
            "false: the list is the same for everyone.",
        ),
        "is_behavioural": MlColumn(
            "BOOLEAN",
            "True when the recommendation comes from the person's own behaviour; false for a "
            "popularity fallback. Persons with one hold the has_recommendations segment.",
        ),
        "model_version": MlColumn(
            "VARCHAR", "Version of the recommendation model that made the list."
        ),
        "as_of": MlColumn("TIMESTAMP", "The instant (UTC) of the behaviour the list is based on."),
    },
)

ITEM_SIMILARITIES = MlTable(
    "ml.item_similarities",
    'The products most similar to each product ("customers who bought this also bought"): '
    "up to 10 rows per product, most similar first. Similar means bought or viewed by the "
    "same persons (co_occurrence); a new product with too few buyers gets products of the same "
    "category and nearest price band instead (content).",
    {
        "product_id": MlColumn("VARCHAR", "The product."),
        "rank": MlColumn("BIGINT", "1 for the most similar product, then 2, 3, ..."),
        "similar_product_id": MlColumn("VARCHAR", "A similar product."),
        "score": MlColumn(
            "DOUBLE",
            "Similarity from 0 to 1: the cosine of the two products' interaction patterns "
            "(co_occurrence), or 1 / (1 + price band distance) (content).",
        ),
        "method": MlColumn("VARCHAR", "co_occurrence or content (see the table description)."),
        "model_version": MlColumn(
            "VARCHAR", "Version of the recommendation model the similarities come from."
        ),
        "as_of": MlColumn("TIMESTAMP", "The instant (UTC) of the model's training data."),
    },
)

ML_TABLES: tuple[MlTable, ...] = (
    CHURN_SCORES,
    PERSON_CLUSTERS,
    CLUSTER_PROFILES,
    CUSTOMER_LIFETIME_VALUES,
    EXPERIMENT_RESULTS,
    PERSON_RECOMMENDATIONS,
    ITEM_SIMILARITIES,
)
"""Every table the ml package writes to the warehouse."""

CHURN_SCORES_TABLE = CHURN_SCORES.name

CHURN_SCORE_COLUMNS: dict[str, str] = {
    name: column.type for name, column in CHURN_SCORES.columns.items()
}
"""One row per scored person (``ml.churn.score_churn``); every column is NOT NULL."""

CLV_TABLE = CUSTOMER_LIFETIME_VALUES.name
CLV_COLUMNS: dict[str, str] = {
    name: column.type for name, column in CUSTOMER_LIFETIME_VALUES.columns.items()
}
"""One row per scored person (``ml.clv.score_clv``); every column is NOT NULL."""


PERSON_RECOMMENDATION_COLUMNS: dict[str, str] = {
    name: column.type for name, column in PERSON_RECOMMENDATIONS.columns.items()
}
ITEM_SIMILARITY_COLUMNS: dict[str, str] = {
    name: column.type for name, column in ITEM_SIMILARITIES.columns.items()
}


def create_table_sql(table: str, columns: dict[str, str], *, replace: bool = True) -> str:
    """``CREATE OR REPLACE TABLE`` (or ``CREATE TABLE IF NOT EXISTS`` with ``replace=False``)
    with ``columns`` (name -> DuckDB type), every column NOT NULL, and its schema if missing."""
    schema = table.split(".", 1)[0]
    create = "CREATE OR REPLACE TABLE" if replace else "CREATE TABLE IF NOT EXISTS"
    body = ",\n    ".join(f"{name} {type_} NOT NULL" for name, type_ in columns.items())
    return f"CREATE SCHEMA IF NOT EXISTS {schema};\n{create} {table} (\n    {body}\n);"
