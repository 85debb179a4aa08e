"""Triton's extensions to the V2 protocol that harnesses read: model configuration and
statistics (`perf_analyzer`, `tritonclient`'s `get_model_config` and
`get_inference_statistics`).

- `model_config`: Triton's model configuration (its `model_config.proto` as JSON) of a
  version, made from the same tensors as the V2 metadata (`app.protocols.tensors.tensor_metadata`)
  and the batching settings the version's batcher runs with.
- `model_statistics`: Triton's statistics of every version asked for, from the version's live
  stats (`entry.stats`: requests counted as they complete, batches as the batcher runs them).

Neither knows HTTP: the routes are in `app.api.v2`.
"""

from __future__ import annotations

import math
from typing import Any

from app.core import InferenceCore
from app.protocols.tensors import parse_version, tensor_metadata
from app.repository import ModelEntry

# V2 datatypes in Triton's model configuration: TYPE_ + the datatype, except BYTES, which the
# configuration calls TYPE_STRING (tritonclient and perf_analyzer map it back to BYTES).
CONFIG_DATATYPES = {"BYTES": "TYPE_STRING"}
NS_PER_S = 1_000_000_000


def version_policy_config(core: InferenceCore, name: str) -> dict[str, Any]:
    """The model's version policy as Triton's configuration writes it, e.g.
    `{"latest": {"num_versions": 1}}`, `{"all": {}}`, `{"specific": {"versions": [1, 3]}}`."""
    policy = core.registry.model(name).policy
    if policy.kind == "all":
        return {"all": {}}
    if policy.kind == "specific":
        return {"specific": {"versions": list(policy.versions)}}
    return {"latest": {"num_versions": policy.num_versions}}


def _config_tensor(tensor: dict[str, Any]) -> dict[str, Any]:
    # With max_batch_size > 0 (always: every version is batched), Triton's dims leave out
    # the batch dimension that V2 metadata writes first.
    datatype = tensor["datatype"]
    return {
        "name": tensor["name"],
        "data_type": CONFIG_DATATYPES.get(datatype, f"TYPE_{datatype}"),
        "dims": tensor["shape"][1:],
    }


def model_config(core: InferenceCore, name: str, version: str | None) -> dict[str, Any]:
    """`GET /v2/models/{name}[/versions/{version}]/config`: the version's configuration.

    Without a version, the version that serves unversioned requests (as the metadata).
    Raises NotFound (unknown model or version), MalformedVersion (400: not a version
    number), Unavailable (no valid card).
    """
    entry = core.registry.carded(name, parse_version(name, version))
    card = entry.card
    batching = core.batching.for_model(name)
    inputs, outputs = tensor_metadata(entry)
    served = core.registry.find(name, entry.version).served
    device = served.model.device if served is not None else "cpu"
    return {
        "name": card.name,
        "platform": card.framework,
        "backend": "synergy",
        "version_policy": version_policy_config(core, name),
        "max_batch_size": batching.max_batch_size,
        "input": [{**_config_tensor(t), "format": "FORMAT_NONE"} for t in inputs],
        "output": [_config_tensor(t) for t in outputs],
        "dynamic_batching": {
            "max_queue_delay_microseconds": math.ceil(batching.max_batch_wait_ms * 1000),
        },
        # One worker thread per version computes its batches, one at a time.
        "instance_group": [
            {
                "name": f"{card.name}_{entry.version}",
                "kind": "KIND_CPU" if device.startswith("cpu") else "KIND_GPU",
                "count": 1,
            }
        ],
        # Ours, with no field of Triton's that means the same (rows, not requests).
        "parameters": {
            "max_queue_rows": {"string_value": str(batching.max_queue_rows)},
            "max_queue_wait_ms": {"string_value": f"{batching.max_queue_wait_ms:g}"},
        },
    }


def _duration(count: int, seconds: float) -> dict[str, int]:
    return {"count": count, "ns": round(seconds * NS_PER_S)}


def version_statistics(entry: ModelEntry) -> dict[str, Any]:
    """One version's Triton statistics (`$model_stat`).

    success/fail: requests served by this version, counted with their whole time in the
    server (receive to response); queue: request segments entering a batch and their wait;
    compute_infer: per request segment of a successful batch, that batch's model call
    (featurisation, forward pass and checks: compute_input and compute_output are part of
    it, so they report the same count and 0 ns); inference_count and execution_count: rows
    and batches of successful model calls; batch_stats: those batches by size. Shadow
    copies (the version as another's shadow) are counted only in `shadow_stats`: a batch
    that mixes them with the version's own requests counts once, its shadow rows apart.
    """
    stats, execution = entry.stats, entry.stats.execution
    computed = execution.computed
    last = execution.last_inference_s
    return {
        "name": entry.name,
        "version": str(entry.version),
        "last_inference": int(last * 1000),
        "inference_count": execution.rows,
        "execution_count": execution.executions,
        "inference_stats": {
            "success": _duration(stats.requests - stats.errors, stats.success_s),
            "fail": _duration(stats.errors, stats.fail_s),
            "queue": _duration(execution.queued, execution.queue_s),
            "compute_input": _duration(computed, 0.0),
            "compute_infer": _duration(computed, execution.compute_s),
            "compute_output": _duration(computed, 0.0),
            "cache_hit": _duration(0, 0.0),
            "cache_miss": _duration(0, 0.0),
        },
        # Not Triton's: shadow copies of another version's requests that this version
        # computed, kept out of the figures above (they are not this version's requests).
        "shadow_stats": {
            "inference_count": execution.shadow_rows,
            "queue": _duration(execution.shadow_queued, execution.shadow_queue_s),
            "compute_infer": _duration(execution.shadow_computed, execution.shadow_compute_s),
        },
        "batch_stats": [
            {
                "batch_size": size,
                "compute_input": _duration(count, 0.0),
                "compute_infer": _duration(count, seconds),
                "compute_output": _duration(count, 0.0),
            }
            for size, count, seconds in execution.batch_sizes()
        ],
    }


def model_statistics(core: InferenceCore, name: str | None, version: str | None) -> dict[str, Any]:
    """`GET /v2/models[/{name}[/versions/{version}]]/stats`: `{"model_stats": [...]}` for
    every served version, of every model or of `name`, or for one version.

    Raises NotFound (unknown model or version), MalformedVersion (400).
    """
    registry = core.registry
    if name is None:
        entries = [e for e in registry if e.card is not None]
    elif version is None:
        entries = [e for e in registry.versions(name).values() if e.card is not None]
    else:
        entries = [registry.find(name, parse_version(name, version))]
    entries.sort(key=lambda e: (e.name, e.version))
    return {"model_stats": [version_statistics(e) for e in entries]}
