"""Model quality on generated data: clusters against the planted archetypes, churn validation.

    python bench/ml_quality.py [--events 200000] [--seed 42] [--workdir DIR]

Generates a sample, runs the `full_build` job (ingestion, dbt, clustering, churn training,
scoring, checks, publish) in a temporary Dagster instance, then maps every warehouse person to
the generator's person through its identifiers (truth/persons.csv) and prints as JSON: the
chosen k, silhouette and Davies-Bouldin, the adjusted Rand index and normalised mutual
information of clusters against planted archetypes, the cluster x archetype table, and the churn
model's time-based validation metrics (ROC-AUC, PR-AUC, Brier, top-decile lift). The JSON also
goes to bench/out/ml_quality-<events>.json (dbt's own output shares stdout).
"""

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import dagster as dg
import duckdb
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from orchestration.definitions import build_definitions
from sample_data import DEFAULT_AS_OF, generate
from warehouse.settings import Settings

PERSON_TRUTH_SQL = """
WITH truth AS (
    SELECT * FROM read_csv(?, all_varchar = true)
),
raw_identifiers AS (
    SELECT person_key, 'user_id' AS identifier_type, customer_id AS raw_identifier
    FROM truth WHERE coalesce(customer_id, '') <> ''
    UNION ALL
    SELECT person_key, 'anonymous_id', unnest(string_split(anonymous_ids, '|'))
    FROM truth WHERE coalesce(anonymous_ids, '') <> ''
),
identifiers AS (
    -- the warehouse keys identifiers by their pseudonyms (the run installed the macro)
    SELECT person_key, identifier_type, segwh_pseudonymize(raw_identifier) AS identifier
    FROM raw_identifiers
)
SELECT DISTINCT clusters.person_id, clusters.cluster_id, truth.archetype
FROM ml.person_clusters AS clusters
JOIN intermediate.int_identifiers_stitched AS stitched USING (person_id)
JOIN identifiers USING (identifier_type, identifier)
JOIN truth USING (person_key)
"""


def _metadata(result, key: dg.AssetKey) -> dict:
    event = next(e for e in result.get_asset_materialization_events() if e.asset_key == key)
    return {k: v.value for k, v in event.event_specific_data.materialization.metadata.items()}


def measure(events: int, seed: int, workdir: Path) -> dict:
    sample = generate(workdir / "sample", n_events=events, seed=seed)
    settings = Settings.in_folder(
        workdir, sample.landing_dir, sample.crm_url, as_of=DEFAULT_AS_OF.isoformat()
    )
    started = time.perf_counter()
    with dg.instance_for_test() as instance:
        job = build_definitions(settings).resolve_job_def("full_build")
        result = job.execute_in_process(instance=instance, raise_on_error=False)
    seconds = time.perf_counter() - started
    clusters = _metadata(result, dg.AssetKey(["ml", "person_clusters"]))
    churn = _metadata(result, dg.AssetKey(["ml", "churn_model"]))
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        frame = con.execute(PERSON_TRUTH_SQL, [str(sample.truth_dir / "persons.csv")]).df()
    frame = frame.drop_duplicates("person_id")  # a person merged from two planted ones: once
    if frame.empty:  # cluster scores against no truth would be meaningless (ARI 1.0 of nothing)
        raise SystemExit("no clustered person matched the truth's identifiers: nothing to score")
    crosstab = frame.groupby(["archetype", "cluster_id"]).size().unstack(fill_value=0)
    return {
        "events": events,
        "seed": seed,
        "full_build_success": result.success,
        "full_build_seconds": round(seconds, 1),
        "persons_matched_to_truth": len(frame),
        "clustering": {
            "k": clusters["k"],
            "silhouette": clusters["silhouette"],
            "davies_bouldin": clusters["davies_bouldin"],
            "adjusted_rand_index": round(adjusted_rand_score(frame.archetype, frame.cluster_id), 3),
            "normalized_mutual_info": round(
                normalized_mutual_info_score(frame.archetype, frame.cluster_id), 3
            ),
            "archetype_by_cluster": {
                archetype: {str(c): int(n) for c, n in row.items()}
                for archetype, row in crosstab.iterrows()
            },
        },
        "churn": {
            key: churn.get(key)
            for key in (
                "trained",
                "reason",
                "model_type",
                "validation_roc_auc",
                "validation_pr_auc",
                "validation_brier",
                "validation_lift_top_decile",
                "training_window",
            )
            if key in churn
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workdir", type=Path, help="kept afterwards (default: a temp dir)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        report = measure(args.events, args.seed, args.workdir)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            report = measure(args.events, args.seed, Path(tmp))
    text = json.dumps(report, indent=2, default=str)
    output = Path(__file__).parent / "out" / f"ml_quality-{args.events}.json"
    output.parent.mkdir(exist_ok=True)
    output.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
