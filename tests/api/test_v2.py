"""Open Inference Protocol (V2) over the in-process client: shapes, outputs, errors."""

from __future__ import annotations

import base64
import gzip
import io
import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.conftest import (
    MODEL_NAMES,
    assert_error,
    assert_same_predictions,
    card_examples,
    model_batches,
    predict,
)

GRID = [[0] * 28 for _ in range(28)]


def _tabular(instance: Any, names: list[str]) -> list[float]:
    return [instance[n] for n in names] if isinstance(instance, dict) else list(instance)


def v2_request(client: Any, model: str, instances: list[Any]) -> dict[str, Any]:
    """A JSON V2 request carrying the friendly API's instances."""
    card = client.get(f"/v1/models/{model}").json()["card"]
    kind = card["input"]["kind"]
    if kind == "tabular":
        names = [f["name"] for f in card["input"]["features"]]
        rows = [_tabular(i, names) for i in instances]
        tensor = {"name": "features", "datatype": "FP32", "shape": [len(rows), len(names)]}
        tensor["data"] = rows
    elif kind == "image":
        tensor = {"name": "image", "datatype": "UINT8", "shape": [len(instances), 28, 28]}
        tensor["data"] = [v for grid in instances for row in grid for v in row]  # flat
    else:
        tensor = {"name": "text", "datatype": "BYTES", "shape": [len(instances)]}
        tensor["data"] = instances
    return {"inputs": [tensor]}


def infer(client: Any, model: str, body: Any, **kwargs: Any) -> Any:
    return client.post(f"/v2/models/{model}/infer", json=body, **kwargs)


def as_predictions(response_body: dict[str, Any], labels: list[str]) -> list[dict[str, Any]]:
    outputs = {o["name"]: o for o in response_body["outputs"]}
    count = outputs["label"]["shape"][0]
    probabilities = np.array(outputs["probabilities"]["data"]).reshape(count, len(labels))
    return [
        {"label": label, "probabilities": dict(zip(labels, row.tolist(), strict=True))}
        for label, row in zip(outputs["label"]["data"], probabilities, strict=True)
    ]


# ---------------------------------------------------------------- metadata and health
def test_server_metadata_and_health(client: Any) -> None:
    metadata = client.get("/v2").json()
    assert metadata["name"] == "synergy-serve"
    assert "binary_tensor_data" in metadata["extensions"]
    assert client.get("/v2/health/live").json() == {"live": True}
    ready = client.get("/v2/health/ready")
    assert (ready.status_code, ready.json()) == (200, {"ready": True})


@pytest.mark.parametrize(
    ("model", "input_name", "datatype", "shape", "classes"),
    [
        ("iris-knn", "features", "FP32", [-1, 4], 3),
        ("binary-mlp", "features", "FP32", [-1, 20], 2),
        ("mnist-cnn", "image", "FP32", [-1, 28, 28], 10),
        ("imdb-sentiment", "text", "BYTES", [-1], 2),
    ],
)
def test_model_metadata(
    client: Any, model: str, input_name: str, datatype: str, shape: list[int], classes: int
) -> None:
    for path in (f"/v2/models/{model}", f"/v2/models/{model}/versions/1"):
        metadata = client.get(path).json()
        assert metadata["name"] == model and metadata["versions"] == ["1"]
        (tensor,) = metadata["inputs"]
        assert (tensor["name"], tensor["datatype"], tensor["shape"]) == (
            input_name,
            datatype,
            shape,
        )
        assert metadata["outputs"][0] == {"name": "label", "datatype": "BYTES", "shape": [-1]}
        assert metadata["outputs"][1] == {
            "name": "probabilities",
            "datatype": "FP32",
            "shape": [-1, classes],
        }
        assert len(metadata["labels"]) == classes
    ready = client.get(f"/v2/models/{model}/ready")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert client.get(f"/v2/models/{model}/versions/1/ready").status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/v2/models/nope",
        "/v2/models/nope/ready",
        "/v2/models/iris-knn/versions/7",
        "/v2/models/iris-knn/versions/7/ready",
    ],
)
def test_unknown_model_or_version_is_404(client: Any, path: str) -> None:
    assert_error(client.get(path), 404, "iris-knn" if "iris" in path else "nope")


@pytest.mark.parametrize(
    "path", ["/v2/models/iris-knn/versions/abc", "/v2/models/iris-knn/versions/0/ready"]
)
def test_a_malformed_version_is_400_as_on_every_route(client: Any, path: str) -> None:
    assert_error(client.get(path), 400, "model 'iris-knn': ", "is not a model version")


def test_unknown_model_or_version_infer_is_404(client: Any) -> None:
    body = v2_request(client, "iris-knn", [[5.1, 3.5, 1.4, 0.2]])
    assert_error(infer(client, "iris", body), 404, "unknown model 'iris'")
    response = client.post("/v2/models/iris-knn/versions/9/infer", json=body)
    assert_error(response, 404, "no version 9")


# ---------------------------------------------------------------- inference
@pytest.mark.parametrize("model", MODEL_NAMES)
def test_infer_matches_the_friendly_api(client: Any, tiny_models_dir: Path, model: str) -> None:
    instances = [instance for instance, _ in card_examples(tiny_models_dir, model)]
    labels = client.get(f"/v2/models/{model}").json()["labels"]
    body = {"id": f"req-{model}", **v2_request(client, model, instances)}
    response = infer(client, model, body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["id"] == f"req-{model}"
    assert (answer["model_name"], answer["model_version"]) == (model, "1")
    friendly = predict(client, model, instances).json()["predictions"]
    assert_same_predictions(as_predictions(answer, labels), friendly)
    versioned = client.post(f"/v2/models/{model}/versions/1/infer", json=body)
    assert_same_predictions(as_predictions(versioned.json(), labels), friendly)


def test_nested_and_flat_data_and_other_numeric_types_agree(client: Any) -> None:
    flower = [6.3, 3.3, 6.0, 2.5]
    answers = []
    for datatype, data in (
        ("FP32", [flower]),
        ("FP32", flower),
        ("FP64", flower),
        ("FP16", flower),
    ):
        tensor = {"name": "features", "datatype": datatype, "shape": [1, 4], "data": data}
        response = infer(client, "iris-knn", {"inputs": [tensor]})
        assert response.status_code == 200, response.text
        answers.append(response.json()["outputs"])
    assert all(a == answers[0] for a in answers)
    integers = {"name": "features", "datatype": "INT32", "shape": [1, 4], "data": [6, 3, 6, 2]}
    assert infer(client, "iris-knn", {"inputs": [integers]}).status_code == 200


def test_outputs_are_honoured_and_id_is_optional(client: Any) -> None:
    body = v2_request(client, "iris-knn", [[5.1, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5]])
    only_label = infer(client, "iris-knn", {**body, "outputs": [{"name": "label"}]}).json()
    assert [o["name"] for o in only_label["outputs"]] == ["label"]
    assert only_label["outputs"][0]["shape"] == [2]
    assert "id" not in only_label
    only_probabilities = infer(
        client, "iris-knn", {**body, "outputs": [{"name": "probabilities"}]}
    ).json()
    (output,) = only_probabilities["outputs"]
    assert (output["name"], output["datatype"], output["shape"]) == (
        "probabilities",
        "FP32",
        [2, 3],
    )
    assert len(output["data"]) == 6
    assert abs(sum(output["data"][:3]) - 1) < 1e-5


def _binary_input(name: str, datatype: str, shape: list[int], blob: bytes) -> dict[str, Any]:
    """A request header whose one input's data is `blob`, sent after the JSON."""
    parameters = {"binary_data_size": len(blob)}
    tensor = {"name": name, "datatype": datatype, "shape": shape, "parameters": parameters}
    return {"inputs": [tensor]}


def _binary_body(header: dict[str, Any], *blobs: bytes) -> tuple[bytes, dict[str, str]]:
    head = json.dumps(header).encode()
    return head + b"".join(blobs), {"Inference-Header-Content-Length": str(len(head))}


def _split_binary_response(response: Any) -> tuple[dict[str, Any], bytes]:
    length = int(response.headers["Inference-Header-Content-Length"])
    return json.loads(response.content[:length]), response.content[length:]


def test_binary_tensors_in_and_out(client: Any, tiny_models_dir: Path) -> None:
    grids = [instance for instance, _ in card_examples(tiny_models_dir, "mnist-cnn")]
    raw = np.array(grids, dtype=np.uint8).tobytes()
    header = {
        **_binary_input("image", "UINT8", [len(grids), 28, 28], raw),
        "parameters": {"binary_data_output": True},
    }
    body, headers = _binary_body(header, raw)
    response = client.post("/v2/models/mnist-cnn/infer", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    answer, blob = _split_binary_response(response)
    label_output, probability_output, warning_output = answer["outputs"]
    assert warning_output["name"] == "warnings" and warning_output["datatype"] == "BYTES"
    label_size = label_output["parameters"]["binary_data_size"]
    probability_size = probability_output["parameters"]["binary_data_size"]
    assert probability_size == len(grids) * 10 * 4

    def elements(start: int, size: int) -> list[str]:
        found, offset = [], start
        while offset < start + size:
            (length,) = struct.unpack_from("<I", blob, offset)
            found.append(blob[offset + 4 : offset + 4 + length].decode())
            offset += 4 + length
        return found

    labels = elements(0, label_size)
    probabilities = np.frombuffer(
        blob[label_size : label_size + probability_size], dtype="<f4"
    ).reshape(len(grids), 10)
    warning_size = warning_output["parameters"]["binary_data_size"]
    assert len(blob) == label_size + probability_size + warning_size
    # The tiny model's card has no out_of_domain section: every instance's list is empty.
    assert elements(label_size + probability_size, warning_size) == ["[]"] * len(grids)
    friendly = predict(client, "mnist-cnn", grids).json()["predictions"]
    assert labels == [p["label"] for p in friendly]
    np.testing.assert_allclose(
        probabilities, [list(p["probabilities"].values()) for p in friendly], atol=1e-6
    )


def test_images_as_bytes_binary_and_base64(client: Any, tiny_models_dir: Path) -> None:
    grid = np.array(card_examples(tiny_models_dir, "mnist-cnn")[0][0], dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(255 - grid).resize((84, 84)).save(buffer, format="PNG")
    png = buffer.getvalue()
    as_json = {
        "inputs": [
            {
                "name": "image",
                "datatype": "BYTES",
                "shape": [1],
                "data": [base64.b64encode(png).decode()],
            }
        ]
    }
    json_answer = infer(client, "mnist-cnn", as_json)
    assert json_answer.status_code == 200, json_answer.text
    raw = struct.pack("<I", len(png)) + png
    body, headers = _binary_body(_binary_input("image", "BYTES", [1, 1], raw), raw)
    binary_answer = client.post("/v2/models/mnist-cnn/infer", content=body, headers=headers)
    assert binary_answer.status_code == 200, binary_answer.text
    assert binary_answer.json()["outputs"] == json_answer.json()["outputs"]
    via_friendly = predict(client, "mnist-cnn", [{"b64": base64.b64encode(png).decode()}])
    labels = client.get("/v2/models/mnist-cnn").json()["labels"]
    assert_same_predictions(
        as_predictions(json_answer.json(), labels), via_friendly.json()["predictions"]
    )


def test_gzip_request_body(client: Any) -> None:
    body = json.dumps(v2_request(client, "iris-knn", [[5.1, 3.5, 1.4, 0.2]])).encode()
    plain = client.post("/v2/models/iris-knn/infer", content=body)
    zipped = client.post(
        "/v2/models/iris-knn/infer",
        content=gzip.compress(body),
        headers={"Content-Encoding": "gzip"},
    )
    assert zipped.status_code == 200, zipped.text
    assert zipped.json() == plain.json()
    brotli = client.post(
        "/v2/models/iris-knn/infer", content=body, headers={"Content-Encoding": "br"}
    )
    assert_error(brotli, 415, "Content-Encoding br")


def test_v2_requests_are_counted_in_metrics(client: Any) -> None:
    before = model_batches(client, "binary-mlp")
    infer(client, "binary-mlp", v2_request(client, "binary-mlp", [[0.5] * 20]))
    assert model_batches(client, "binary-mlp") == before + 1
    metrics = client.get("/metrics").text
    assert 'endpoint="infer"' in metrics


# ---------------------------------------------------------------- errors
def _tensor(name: str, datatype: str, shape: list[int], data: Any) -> dict[str, Any]:
    return {"inputs": [{"name": name, "datatype": datatype, "shape": shape, "data": data}]}


ERROR_CASES = [
    ("iris-knn", _tensor("x", "FP32", [1, 4], [1, 2, 3, 4]), 400, ("one input, named 'features'",)),
    ("iris-knn", _tensor("features", "BOOL", [1, 4], [True] * 4), 400, ("not BOOL",)),
    ("iris-knn", _tensor("features", "FLOAT", [1, 4], [1, 2, 3, 4]), 400, ("unknown datatype",)),
    ("iris-knn", _tensor("features", "FP32", [1, 3], [1, 2, 3]), 400, ("shape [N, 4]", "[1, 3]")),
    ("iris-knn", _tensor("features", "FP32", [2, 4], [1, 2, 3, 4]), 400, ("needs 8 values",)),
    ("iris-knn", _tensor("features", "FP32", [0, 4], []), 400, ("empty",)),
    (
        "iris-knn",
        _tensor("features", "FP32", [2, 4], [[1, 2, 3, 4, 5], [1, 2, 3]]),
        400,
        ("does not have the shape",),
    ),
    ("iris-knn", _tensor("features", "FP32", [1, 4], [1, 2, "3", 4]), 400, ("must be numbers",)),
    ("iris-knn", _tensor("features", "FP32", [1, 4], [1, 2, 3, 1e39]), 400, ("FP32",)),
    ("iris-knn", _tensor("features", "INT32", [1, 4], [1, 2, 3.5, 4]), 400, ("integers",)),
    ("iris-knn", _tensor("features", "INT64", [1, 4], [1, 2, True, 4]), 400, ("integers",)),
    ("iris-knn", _tensor("features", "FP32", [1, 4], None), 400, ("no data",)),
    ("iris-knn", _tensor("features", "FP32", [1, 4], 5), 400, ("must be a list",)),
    (
        "mnist-cnn",
        _tensor("image", "UINT8", [1, 28, 28], [300] + [0] * 783),
        400,
        ("out of range for UINT8",),
    ),
    (
        "mnist-cnn",
        _tensor("image", "FP32", [1, 28, 28], [[[*GRID[0][:27], 256.0], *GRID[1:]]]),
        400,
        ("image[0]", "0-255", "row 0, column 27"),
    ),
    ("mnist-cnn", _tensor("image", "BYTES", [1], ["!!not base64"]), 400, ("base64",)),
    (
        "mnist-cnn",
        _tensor("image", "BYTES", [1], [base64.b64encode(b"not an image").decode()]),
        400,
        ("image[0]", "PNG or JPEG"),
    ),
    ("imdb-sentiment", _tensor("text", "BYTES", [1], [""]), 400, ("empty",)),
    ("imdb-sentiment", _tensor("text", "BYTES", [1], [42]), 400, ("strings",)),
    ("imdb-sentiment", _tensor("text", "FP32", [1], [1.0]), 400, ("takes BYTES",)),
    ("imdb-sentiment", _tensor("text", "BYTES", [2, 2], ["a", "b", "c", "d"]), 400, ("[N]",)),
    (
        "imdb-sentiment",
        {**_tensor("text", "BYTES", [1], ["fine"]), "outputs": [{"name": "logits"}]},
        400,
        ("unknown output 'logits'",),
    ),
    (
        "imdb-sentiment",
        {**_tensor("text", "BYTES", [1], ["fine"]), "outputs": []},
        400,
        ("outputs is empty",),
    ),
    ("iris-knn", {"inputs": []}, 400, ("inputs",)),
]


@pytest.mark.parametrize(
    ("model", "body", "status", "fragments"),
    ERROR_CASES,
    ids=[f"case-{i}" for i in range(len(ERROR_CASES))],
)
def test_bad_infer_requests(
    client: Any, model: str, body: Any, status: int, fragments: tuple[str, ...]
) -> None:
    before = model_batches(client, model)
    assert_error(infer(client, model, body), status, *fragments)
    assert model_batches(client, model) == before, "a bad request reached the model"


def test_too_many_instances_is_413(client: Any) -> None:
    body = _tensor("text", "BYTES", [1001], ["ok"] * 1001)
    assert_error(infer(client, "imdb-sentiment", body), 413, "at most 1000")


@pytest.mark.parametrize(
    ("content", "headers", "fragments"),
    [
        (b'{"inputs": [', {}, ("not valid JSON",)),
        (b"[1, 2]", {}, ("body",)),
        (b'{"inputs": [{"name": "text"}]}', {}, ("inputs[0].shape", "inputs[0].datatype")),
        (b"{}", {"Inference-Header-Content-Length": "x"}, ("must be the JSON header's length",)),
        (b"{}", {"Inference-Header-Content-Length": "99"}, ("the body has 2 bytes",)),
        (b"\x1f\x8b not gzip", {"Content-Encoding": "gzip"}, ("not valid gzip",)),
    ],
)
def test_malformed_infer_bodies_are_400(
    client: Any, content: bytes, headers: dict[str, str], fragments: tuple[str, ...]
) -> None:
    response = client.post("/v2/models/imdb-sentiment/infer", content=content, headers=headers)
    assert_error(response, 400, *fragments)


def test_binary_data_mismatches_are_400(client: Any) -> None:
    def send(header: dict[str, Any], blob: bytes) -> Any:
        body, headers = _binary_body(header, blob)
        return client.post("/v2/models/imdb-sentiment/infer", content=body, headers=headers)

    def text_input(**extra: Any) -> dict[str, Any]:
        return {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], **extra}]}

    good = struct.pack("<I", 4) + b"fine"
    ok = send(_binary_input("text", "BYTES", [1], good), good)
    assert ok.status_code == 200, ok.text
    assert_error(
        send(text_input(parameters={"binary_data_size": 3}), good), 400, "binary_data_size"
    )
    assert_error(send(text_input(data=["x"]), good), 400, "no input declares")
    truncated = struct.pack("<I", 40) + b"fine"
    assert_error(
        send(_binary_input("text", "BYTES", [1], truncated), truncated),
        400,
        "claims 40 bytes",
    )
    latin1 = struct.pack("<I", 4) + "caf\xe9".encode("latin-1")
    assert_error(send(_binary_input("text", "BYTES", [1], latin1), latin1), 400, "UTF-8")
    floats = np.zeros(3, dtype="<f4").tobytes()
    body, headers = _binary_body(_binary_input("features", "FP32", [1, 4], floats), floats)
    response = client.post("/v2/models/iris-knn/infer", content=body, headers=headers)
    assert_error(response, 400, "needs 16 bytes")


def test_unsupported_extensions_are_refused_not_ignored(client: Any) -> None:
    body = _tensor("text", "BYTES", [1], ["fine"])
    sequence = {**body, "parameters": {"sequence_id": 7}}
    assert_error(infer(client, "imdb-sentiment", sequence), 400, "sequence")
    classification = {**body, "outputs": [{"name": "label", "parameters": {"classification": 2}}]}
    assert_error(infer(client, "imdb-sentiment", classification), 400, "classification")


def test_versions_of_one_model_keep_their_own_inputs(models_copy: Path) -> None:
    """Two versions with different inputs: each answers with its own metadata and shapes."""
    import shutil

    from tests.conftest import running_app

    for version, source in ((1, "iris-knn"), (2, "binary-mlp")):
        target = models_copy / "combo" / str(version)
        shutil.copytree(models_copy / source / "1", target)
        card = json.loads((target / "card.json").read_text())
        card.update(name="combo", version=version)
        (target / "card.json").write_text(json.dumps(card))
    with running_app(models_copy) as app_client:
        for version, width in ((2, 20), (1, 4), (2, 20)):
            path = f"/v2/models/combo/versions/{version}"
            assert app_client.get(path).json()["inputs"][0]["shape"] == [-1, width]
            body = _tensor("features", "FP32", [1, width], [0.5] * width)
            answer = app_client.post(f"{path}/infer", json=body)
            assert answer.status_code == 200, answer.text
            wrong = _tensor("features", "FP32", [1, 24 - width], [0.5] * (24 - width))
            assert_error(app_client.post(f"{path}/infer", json=wrong), 400, f"[N, {width}]")


def test_gzip_with_trailing_data_and_shared_memory_outputs_are_refused(client: Any) -> None:
    body = json.dumps(_tensor("text", "BYTES", [1], ["fine"])).encode()
    response = client.post(
        "/v2/models/imdb-sentiment/infer",
        content=gzip.compress(body) + b"junk",
        headers={"Content-Encoding": "gzip"},
    )
    assert_error(response, 400, "after the end of the gzip stream")
    shared = {
        **_tensor("text", "BYTES", [1], ["fine"]),
        "outputs": [{"name": "label", "parameters": {"shared_memory_region": "out0"}}],
    }
    assert_error(infer(client, "imdb-sentiment", shared), 400, "shared memory")


def test_openapi_infer_body_refers_to_registered_schemas(client: Any) -> None:
    schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/v2/models/{name}/infer"]["post"]
    reference = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    components = schema["components"]["schemas"]
    assert reference.rsplit("/", 1)[1] in components
    text = json.dumps(components["InferenceRequest"])
    for name in ("RequestInput", "RequestOutput"):
        assert f"#/components/schemas/{name}" in text and name in components
