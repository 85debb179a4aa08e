"""Open Inference Protocol (V2): typed tensors in, the same core, tensors out.

Decoding: the pure codec (`app.codecs.v2`) reads the body (gzip/deflate, Triton's binary
extension, the JSON document, the tensor), against the V2 input the selected version's adapter
declares (`adapter.tensor_spec`); the adapter makes the rows, with the same checks as on every
other route. The core computes the probabilities; the codec encodes `label` (BYTES [N]) and
`probabilities` (FP32 [N, C]) as asked for.

Every error the client can fix is a 400 here (the protocol's convention), not the friendly
API's 422.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from starlette.types import Receive

from app import __version__
from app.adapters import RowWarnings
from app.budget import RequestBudget
from app.codecs.v2 import (
    EXTENSIONS,
    HEADER_LENGTH,
    SERVER_NAME,
    decode_input,
    decompress_body,
    encode_response,
    encode_tensors,
    parse_request,
    requested_outputs,
    split_body,
)
from app.context import RequestContext
from app.core import InferenceCore
from app.errors import BadRequest, InvalidInput, NotFound
from app.protocols.v1 import LARGE_BODY_BYTES, V1Protocol
from app.repository import CardedVersion, ModelRegistry, ModelState
from app.schemas.card import ModelCard
from app.schemas.v2 import InferenceRequest
from app.schemas.versions import not_a_version
from app.schemas.versions import parse_version as version_number
from app.tasks import WARNINGS_OUTPUT, output_names, outputs_of, task_of


def parse_version(registry: ModelRegistry, name: str, version: str | None) -> int | None:
    """A V2 path's version (a string) as a number; None when the path has none. Raises
    NotFound (naming the versions there are) for anything but digits."""
    if version is None:
        return None
    number = version_number(version)
    if number is None:
        versions = ", ".join(str(v) for v in sorted(registry.versions(name)))
        raise NotFound(f"model {name!r}: {not_a_version(version)}; available: {versions}")
    return number


def tensor_metadata(
    entry: CardedVersion,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(inputs, outputs) of a carded, loaded version, as V2 metadata writes them: name,
    datatype, shape with the batch dimension first (-1: any size). The one source of the
    tensors that the metadata and Triton's model configuration describe."""
    card, adapter = entry.card, entry.kind
    spec = adapter.tensor_spec
    accepted = ", ".join(spec.datatypes)
    inputs = [
        {
            "name": spec.name,
            "datatype": spec.metadata_datatype,
            "shape": [-1, *spec.row_shape],
            "parameters": {"accepted_datatypes": accepted, "description": spec.help},
        }
    ]
    outputs: list[dict[str, Any]] = [
        {"name": output.name, "datatype": output.datatype, "shape": [-1, *output.row_shape]}
        | ({"parameters": {"description": output.description}} if output is WARNINGS_OUTPUT else {})
        for output in outputs_of(card)
    ]
    return inputs, outputs


@dataclass
class DecodedRequest:
    """What an infer request asks for, ready for the core."""

    request: InferenceRequest
    rows: list[Any]
    # (output name, as binary?) in the order asked for.
    outputs: list[tuple[str, bool]]


def warning_texts(warnings: Sequence[RowWarnings], count: int) -> np.ndarray:
    """The `warnings` output: per row, the JSON text of its list of `{code, message}`."""
    texts = np.empty(count, dtype=object)
    for index in range(count):
        found = warnings[index] if index < len(warnings) else ()
        listed = [{"code": w.code, "message": w.message} for w in found]
        texts[index] = orjson.dumps(listed).decode()
    return texts


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


class V2Protocol:
    """The V2 endpoints' logic, over the core."""

    def __init__(self, core: InferenceCore, v1: V1Protocol, ready: Any) -> None:
        self.core = core
        self.registry = core.registry
        self.settings = core.settings
        # Value counting before parsing is shared with the friendly API.
        self._v1 = v1
        self._server_ready = ready

    # ------------------------------------------------------------------ metadata and health
    def server_metadata(self) -> dict[str, Any]:
        """`GET /v2`."""
        return {"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS}

    def server_ready(self) -> bool:
        """Every model loaded and warm, and not shutting down."""
        return bool(self._server_ready())

    def _version(self, name: str, version: str | None) -> int | None:
        return parse_version(self.registry, name, version)

    def model_metadata(self, name: str, version: str | None) -> dict[str, Any]:
        """`GET /v2/models/{name}[/versions/{version}]`."""
        entry = self.registry.carded(name, self._version(name, version))
        card = entry.card
        inputs, outputs = tensor_metadata(entry)
        return {
            "name": card.name,
            "versions": [str(v) for v in sorted(self.registry.versions(name))],
            "platform": card.framework,
            "inputs": inputs,
            "outputs": outputs,
            "labels": card.labels,
        }

    def model_ready(self, name: str, version: str | None) -> tuple[bool, dict[str, Any]]:
        """(ready?, body) for `GET /v2/models/{name}[/versions/{version}]/ready`."""
        entry = self.registry.find(name, self._version(name, version))
        ready = entry.state is ModelState.READY and not self.core.draining
        return ready, {"name": name, "version": str(entry.version), "ready": ready}

    # ------------------------------------------------------------------ inference
    async def infer(
        self,
        name: str,
        version: str | None,
        body: bytes,
        headers: dict[str, str | None],
        context: RequestContext,
        receive: Receive | None = None,
    ) -> tuple[bytes, dict[str, str], str]:
        """One infer request -> (response body, extra headers, media type)."""
        context.protocol = "v2"
        entry = self.core.select(name, self._version(name, version), context)
        decoded = await self.decode(entry, body, headers, context, receive)
        try:
            probabilities = await self.core.infer(
                entry, decoded.rows, context, f"input {entry.kind.tensor_spec.name}[{{}}]"
            )
        except InvalidInput as exc:
            raise BadRequest(exc.message) from None
        return self.encode(entry, decoded, probabilities, context.warnings)

    async def decode(
        self,
        entry: CardedVersion,
        body: bytes,
        headers: dict[str, str | None],
        context: RequestContext,
        receive: Receive | None = None,
    ) -> DecodedRequest:
        """An infer request body -> the version's rows and the outputs asked for (on a
        decoding thread when it is large, compressed or holds images)."""
        adapter = entry.kind
        compressed = (headers.get("content-encoding") or "identity").strip().lower() != "identity"
        try:
            if adapter.slow_rows or compressed or len(body) > LARGE_BODY_BYTES:
                return await self.core.off_loop(
                    lambda budget: self._decode(entry, body, headers, budget), context, receive
                )
            return self._decode(entry, body, headers, None)
        except InvalidInput as exc:
            raise BadRequest(exc.message) from None

    def _decode(
        self,
        entry: CardedVersion,
        body: bytes,
        headers: dict[str, str | None],
        budget: RequestBudget | None,
    ) -> DecodedRequest:
        adapter = entry.kind
        header_length = headers.get(HEADER_LENGTH.lower())
        limit = adapter.max_values(self.settings.limits.max_instances)
        body = decompress_body(
            body,
            headers.get("content-encoding"),
            self.settings.limits.max_body_bytes,
            # Only an all-JSON body's commas are values; binary tensor data has any bytes.
            None
            if header_length is not None or limit is None
            else lambda values: self._v1.check_value_count(entry, values),
        )
        header, binary = split_body(body, header_length)
        if len(header) > LARGE_BODY_BYTES:
            self._v1.check_value_count(entry, header.count(b",") + 1)
        request = parse_request(header)
        outputs = requested_outputs(request, output_names(entry.card))
        datatype, values = decode_input(
            request, binary, adapter.tensor_spec, entry.name, self.settings.limits.max_instances
        )
        return DecodedRequest(request, adapter.tensor_rows(datatype, values, budget), outputs)

    def encode(
        self,
        entry: CardedVersion,
        decoded: DecodedRequest,
        probabilities: np.ndarray,
        warnings: Sequence[RowWarnings] = (),
    ) -> tuple[bytes, dict[str, str], str]:
        """(body, extra headers, media type) of the infer response."""
        card = entry.card
        if not card.is_classifier:
            names = [name for name, _ in decoded.outputs]
            tensors = [
                (name, values, binary)
                for (name, values), (_, binary) in zip(
                    output_tensors(card, names, probabilities, warnings),
                    decoded.outputs,
                    strict=True,
                )
            ]
            return encode_tensors(entry.name, entry.version, decoded.request.id, tensors)
        return encode_response(
            entry.name,
            entry.version,
            decoded.request.id,
            card.labels,
            probabilities,
            decoded.outputs,
            warnings,
        )
