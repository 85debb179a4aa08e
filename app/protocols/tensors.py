"""What the tensor protocols share: V2 over REST (`app.protocols.v2`), Triton's extensions
(`app.protocols.triton`) and V2 over gRPC (`app.rpc.service`) are peers over the core and
this module, not over each other.

- `parse_version`: a V2 path's (or gRPC field's) version, by the one version parser.
- `tensor_metadata` / `model_metadata`: a version's input and output tensors.
- `output_tensors`: the model's outputs as the V2 output tensors asked for.
- `tensor_error`: an error of the core in the tensor protocols' words.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from app.codecs.v2 import TensorSpec
from app.core import InferenceCore
from app.errors import BadRequest, InvalidInput, ServingError
from app.kinds import RowWarnings
from app.repository import CardedVersion
from app.schemas.card import ModelCard
from app.schemas.versions import requested_version
from app.tasks import WARNINGS_OUTPUT, outputs_of, task_of, warning_texts


def parse_version(name: str, version: str | None) -> int | None:
    """A V2 path's version (a string) as a number; None when the path has none. Raises
    MalformedVersion (400, as on every route) for anything but a version number."""
    return None if version is None else requested_version(name, version)


def tensor_metadata(entry: CardedVersion) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(inputs, outputs) of a carded, loaded version, as V2 metadata writes them: name,
    datatype, shape with the batch dimension first (-1: any size). The one source of the
    tensors that the metadata and Triton's model configuration describe."""
    card, adapter = entry.card, entry.kind
    # A kind with one tensor per feature lists those: what a V2 client builds its request
    # from, every listed input being one it must send. (The one-input form it also takes is
    # in the docs, docs/v2.md, and in each input's description.)
    inputs = [_input_metadata(spec) for spec in adapter.feature_specs or (adapter.tensor_spec,)]
    outputs: list[dict[str, Any]] = [
        {"name": output.name, "datatype": output.datatype, "shape": [-1, *output.row_shape]}
        | ({"parameters": {"description": output.description}} if output is WARNINGS_OUTPUT else {})
        for output in outputs_of(card)
    ]
    return inputs, outputs


def _input_metadata(spec: TensorSpec) -> dict[str, Any]:
    parameters: dict[str, Any] = {
        "accepted_datatypes": ", ".join(spec.datatypes),
        "description": spec.help,
    }
    if spec.nullable:
        parameters["nullable"] = True
    if spec.features:
        # V2 parameters are scalars: the lists travel as JSON arrays in strings.
        parameters["feature_names"] = json.dumps([name for name, _ in spec.features])
        parameters["feature_datatypes"] = json.dumps([datatype for _, datatype in spec.features])
    return {
        "name": spec.name,
        "datatype": spec.metadata_datatype,
        "shape": [-1, *spec.row_shape],
        "parameters": parameters,
    }


def tensor_error(exc: ServingError, tensor: str) -> ServingError:
    """An error of the core worded the V2 way: a row named as `input features[3]`, and every
    error the client can fix a 400 (the protocol's convention), not the friendly API's 422."""
    if exc.instance is not None:
        exc.message = f"input {tensor}[{exc.instance}]: {exc.message}"
        exc.instance = None
    if isinstance(exc, InvalidInput):
        return BadRequest(exc.message)
    return exc


def model_metadata(core: InferenceCore, name: str, version: str | None) -> dict[str, Any]:
    """A version's V2 metadata (REST `GET /v2/models/{name}[/versions/{version}]` and gRPC
    `ModelMetadata`): name, versions, platform, input and output tensors, labels. Raises
    NotFound (unknown model or version), MalformedVersion (400), Unavailable (no valid card).
    """
    entry = core.registry.carded(name, parse_version(name, version))
    card = entry.card
    inputs, outputs = tensor_metadata(entry)
    return {
        "name": card.name,
        "versions": [str(v) for v in sorted(core.registry.versions(name))],
        "platform": card.framework,
        "inputs": inputs,
        "outputs": outputs,
        "labels": card.labels,
    }


def output_tensors(
    card: ModelCard,
    names: Sequence[str],
    outputs: np.ndarray,
    warnings: Sequence[RowWarnings],
) -> list[tuple[str, np.ndarray]]:
    """(name, values) of each V2 output asked for, from the model's `(N, C)` outputs and the
    rows' warnings: the task's tensors (`app.tasks`) and `warnings`, whatever the protocol."""
    task = task_of(card)
    return [
        (
            name,
            warning_texts(warnings, len(outputs))
            if name == WARNINGS_OUTPUT.name
            else task.tensor(card, name, outputs),
        )
        for name in names
    ]
