"""Input warnings end to end (issue 23): the same warning on V1 and V2, counted per version
in the model's metrics and in Prometheus. The tiny iris model's card gets an out_of_domain
section as `python -m training ood` writes one."""

from __future__ import annotations

import json
from pathlib import Path

from app.schemas.card import ModelCard, OutOfDomainChecks
from tests.conftest import predict, running_app

REAL = [5.1, 3.5, 1.4, 0.2]
HUGE = [51.0, 35.0, 14.0, 2.0]


def _with_ranges(models_dir: Path) -> None:
    folder = models_dir / "iris-knn" / "1"
    card = ModelCard.read(folder)
    checks = OutOfDomainChecks(
        method="tabular range (test)",
        fitted_on="test",
        feature_low=[4.0, 1.8, 0.8, 0.0],
        feature_high=[8.2, 4.6, 7.2, 2.7],
        held_out_warned=0.0,
        out_of_domain_warned={},
    )
    card.model_copy(update={"out_of_domain": checks}).write(folder)


def test_v1_and_v2_carry_the_same_warning_and_metrics_count_it(models_copy: Path) -> None:
    _with_ranges(models_copy)
    with running_app(models_copy) as client:
        response = predict(client, "iris-knn", [REAL, HUGE])
        assert response.status_code == 200, response.text
        plain, huge = response.json()["predictions"]
        assert plain["warnings"] == []
        assert [w["code"] for w in huge["warnings"]] == ["feature_out_of_range"]
        assert "sepal_length = 51" in huge["warnings"][0]["message"]
        # Bounded: no class is exactly 0 or 1.
        assert 0.0 < min(huge["probabilities"].values()) < max(huge["probabilities"].values()) < 1

        v2 = client.post(
            "/v2/models/iris-knn/infer",
            json={
                "inputs": [
                    {"name": "features", "datatype": "FP32", "shape": [2, 4], "data": [REAL, HUGE]}
                ]
            },
        )
        assert v2.status_code == 200, v2.text
        outputs = {o["name"]: o for o in v2.json()["outputs"]}
        lists = [json.loads(text) for text in outputs["warnings"]["data"]]
        assert lists[0] == [] and lists[1] == huge["warnings"]

        stats = client.get("/v1/models/iris-knn/metrics").json()["serving"]["input_warnings"]
        assert stats["warned_predictions"] == 2
        assert stats["by_code"] == {"feature_out_of_range": 2}
        report = client.get("/v1/models/iris-knn/versions/1/report")
        # The page's live tiles start from the serving snapshot embedded in it.
        assert report.status_code == 200 and '"warned_predictions":2' in report.text
        metrics = client.get("/metrics").text
        assert (
            'synergy_input_warnings_total{code="feature_out_of_range",model="iris-knn",'
            'version="1"} 2.0' in metrics
        )
