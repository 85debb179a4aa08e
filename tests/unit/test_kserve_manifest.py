"""The KServe ServingRuntime declares what this server serves: the committed models'
frameworks, the protocols (v1, v2, grpc-v2), and ports and probe that match its settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import COMMITTED_MODELS, ROOT

KSERVE = ROOT / "deploy" / "kserve"


def _load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((KSERVE / name).read_text())
    return document


def test_the_runtime_declares_formats_protocols_and_the_grpc_port() -> None:
    runtime = _load("servingruntime.yaml")
    assert (runtime["apiVersion"], runtime["kind"]) == (
        "serving.kserve.io/v1alpha1",
        "ServingRuntime",
    )
    spec = runtime["spec"]
    assert set(spec["protocolVersions"]) == {"v1", "v2", "grpc-v2"}
    frameworks = {
        json.loads(card.read_text())["framework"]
        for card in Path(COMMITTED_MODELS).glob("*/*/card.json")
    }
    assert frameworks <= {f["name"] for f in spec["supportedModelFormats"]}
    (container,) = spec["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["SYNERGY_MODELS_DIR"] == "/mnt/models"  # where KServe's storage initializer copies
    grpc_port = int(env["SYNERGY_GRPC_PORT"])
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"h2c": grpc_port}
    assert container["readinessProbe"]["grpc"] == {
        "port": grpc_port,
        "service": "inference.GRPCInferenceService",
    }


def test_the_inference_service_uses_the_runtime_over_grpc() -> None:
    service = _load("inferenceservice.yaml")
    model = service["spec"]["predictor"]["model"]
    assert model["runtime"] == _load("servingruntime.yaml")["metadata"]["name"]
    assert model["protocolVersion"] == "grpc-v2"
