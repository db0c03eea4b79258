"""The recommendation assets on a small hand-made warehouse: a sensor-style run rescores only
the persons with new interactions (or a changed consent) with the current model, no retraining;
persons no longer profiled leave; a new model version rescoring everyone."""

from pathlib import Path

import dagster as dg
import pandas as pd

from ml.config import RecommendationConfig
from ml.recommendations import build_catalogue, build_interactions, fit_recommender
from orchestration.defs.recommendations import person_recommendations
from orchestration.resources import ModelStoreResource, WarehouseResource
from warehouse.connection import connect

AS_OF = pd.Timestamp("2026-11-01")
PRODUCTS = pd.DataFrame(
    {
        "product_id": [f"P{i}" for i in range(8)],
        "category": ["shoes"] * 4 + ["beauty"] * 4,
        "price_band": [1, 2, 3, 4] * 2,
        "is_repeat_purchase": [False] * 8,
    }
)


def _interactions(as_of: pd.Timestamp) -> pd.DataFrame:
    rows = []
    for p in range(20):
        base = 0 if p < 10 else 4
        for item in ((p % 4), (p + 1) % 4):
            rows.append((f"u{p:02d}", f"P{base + item}", 2.0, 0, as_of - pd.Timedelta(days=3)))
    frame = pd.DataFrame(
        rows,
        columns=[
            "person_id",
            "product_id",
            "interaction_weight",
            "purchases",
            "last_interacted_at",
        ],
    )
    return frame.assign(as_of=as_of)


def _write_marts(warehouse: Path, interactions: pd.DataFrame, consent: dict[str, bool]) -> None:
    persons = pd.DataFrame({"person_id": sorted(consent)})
    persons["has_personalization_consent"] = persons["person_id"].map(consent)
    persons["as_of"] = interactions["as_of"].max()
    with connect(warehouse) as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS marts")
        con.register("interactions", interactions)
        con.register("persons", persons)
        con.execute(
            "CREATE OR REPLACE TABLE marts.person_item_interactions AS SELECT * FROM interactions"
        )
        con.execute(
            "CREATE OR REPLACE TABLE marts.person_features AS SELECT person_id, as_of FROM persons"
        )
        con.execute(
            "CREATE OR REPLACE TABLE marts.person_consents AS "
            "SELECT person_id, has_personalization_consent FROM persons"
        )


def _promote(models: Path, model_type: str = "item_item") -> str:
    catalogue = build_catalogue(PRODUCTS)
    config = RecommendationConfig(neighbours=3, svd_products_per_component=1, svd_components=2)
    model = fit_recommender(
        model_type, build_interactions(_interactions(AS_OF), catalogue), catalogue, None, config
    )
    resource = ModelStoreResource(path=str(models))
    registry = resource.recommendation_registry()
    registered = registry.register(model)
    assert registry.promote(registered, metric="ndcg_at_10", force=True).promoted
    return registered.version


def _run(warehouse: Path, models: Path, instance) -> dict:
    result = dg.materialize(
        [person_recommendations],
        instance=instance,
        resources={
            "warehouse": WarehouseResource(path=str(warehouse)),
            "models": ModelStoreResource(path=str(models)),
        },
    )
    assert result.success
    (event,) = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.materialization.metadata.items()}


def _table(warehouse: Path) -> pd.DataFrame:
    with connect(warehouse, read_only=True) as con:
        return con.execute("SELECT * FROM ml.person_recommendations ORDER BY person_id, rank").df()


def test_sensor_runs_rescore_only_persons_with_new_events(tmp_path) -> None:
    warehouse, models = tmp_path / "warehouse.duckdb", tmp_path / "models"
    consent = {f"u{p:02d}": True for p in range(20)} | {"u19": False}
    _write_marts(warehouse, _interactions(AS_OF), consent)
    version = _promote(models)

    with dg.instance_for_test() as instance:
        first = _run(warehouse, models, instance)
        assert first["mode"] == "full" and first["persons_scored"] == 20
        before = _table(warehouse)
        assert set(before.model_version) == {version}
        assert set(before[before.person_id == "u19"].reason) == {"popular overall"}

        # a day later: u00 (a shoe lover) looked at beauty products, u05 was erased, u19
        # now consents to personalization; nobody else did anything
        later = AS_OF + pd.Timedelta(days=1)
        interactions = _interactions(later)
        interactions["last_interacted_at"] = AS_OF - pd.Timedelta(days=3)
        new = pd.DataFrame(
            {
                "person_id": ["u00"] * 3,
                "product_id": ["P4", "P5", "P6"],
                "interaction_weight": [9.0, 9.0, 9.0],
                "purchases": [0, 0, 0],
                "last_interacted_at": [later - pd.Timedelta(hours=2)] * 3,
                "as_of": later,
            }
        )
        interactions = pd.concat([interactions[interactions.person_id != "u05"], new])
        consent = {k: True for k in consent if k != "u05"}
        _write_marts(warehouse, interactions, consent)

        second = _run(warehouse, models, instance)

    assert second["mode"] == "incremental"
    assert second["persons_scored"] == 2  # u00 (new events) and u19 (consent)
    after = _table(warehouse)
    assert "u05" not in set(after.person_id)
    assert set(after.model_version) == {version}  # no retraining
    unchanged = before[~before.person_id.isin(["u00", "u19", "u05"])].reset_index(drop=True)
    kept = after[~after.person_id.isin(["u00", "u19"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(unchanged, kept)
    u00 = after[after.person_id == "u00"]
    assert (u00.as_of == later).all()
    assert set(u00.product_id) & {"P7"}  # the new beauty interest reaches the list
    assert (after[after.person_id == "u19"].is_personalized).all()


def test_a_new_model_version_rescores_everyone(tmp_path) -> None:
    warehouse, models = tmp_path / "warehouse.duckdb", tmp_path / "models"
    _write_marts(warehouse, _interactions(AS_OF), {f"u{p:02d}": True for p in range(20)})
    _promote(models)
    with dg.instance_for_test() as instance:
        _run(warehouse, models, instance)
        version = _promote(models, "svd")
        again = _run(warehouse, models, instance)
    assert again["mode"] == "full" and again["persons_scored"] == 20
    assert set(_table(warehouse).model_version) == {version}
