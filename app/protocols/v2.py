"""Open Inference Protocol (V2): typed tensors in, the same core, tensors out.

Decoding: the pure codec (`app.codecs.v2`) reads the body (gzip/deflate, Triton's binary
extension, the JSON document, the tensor), against the V2 input the selected version's adapter
declares (`adapter.tensor_spec`, or one tensor per feature, `adapter.feature_specs`, where the
kind has such a form); the adapter makes the rows, with the same checks as on every
other route. The core computes the probabilities; the codec encodes `label` (BYTES [N]) and
`probabilities` (FP32 [N, C]) as asked for.

Every error the client can fix is a 400 here (the protocol's convention), not the friendly
API's 422.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app import __version__
from app.budget import RequestBudget
from app.codecs.v2 import (
    EXTENSIONS,
    HEADER_LENGTH,
    SERVER_NAME,
    decode_input,
    decode_named_inputs,
    decompress_body,
    parse_request,
    requested_outputs,
    split_body,
    takes_named_inputs,
)
from app.context import RequestContext
from app.core import InferenceCore
from app.decoding import LARGE_BODY_BYTES, Receive
from app.errors import BadRequest, InvalidInput, ServingError
from app.kinds import RowWarnings
from app.protocols.tensors import (
    model_metadata,
    parse_version,
    tensor_error,
)
from app.repository import CardedVersion, ModelState
from app.schemas.v2 import InferenceRequest
from app.tasks import output_names


@dataclass
class DecodedRequest:
    """What an infer request asks for, ready for the core."""

    request: InferenceRequest
    rows: list[Any]
    # (output name, as binary?) in the order asked for.
    outputs: list[tuple[str, bool]]


@dataclass(frozen=True, slots=True)
class _ParsedRequest:
    """A parsed infer request whose rows are still to be made (`make_rows(budget)`), on a
    decoding thread where `off_loop`."""

    request: InferenceRequest
    outputs: list[tuple[str, bool]]
    make_rows: Callable[[RequestBudget | None], list[Any]]
    off_loop: bool


class V2Protocol:
    """The V2 endpoints' logic, over the core."""

    def __init__(self, core: InferenceCore, ready: Any) -> None:
        self.core = core
        self.registry = core.registry
        self.limits = core.limits
        self._server_ready = ready

    # ------------------------------------------------------------------ metadata and health
    def server_metadata(self) -> dict[str, Any]:
        """`GET /v2`."""
        return {"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS}

    def server_ready(self) -> bool:
        """Every model loaded and warm, and not shutting down."""
        return bool(self._server_ready())

    def _version(self, name: str, version: str | None) -> int | None:
        return parse_version(name, version)

    def model_metadata(self, name: str, version: str | None) -> dict[str, Any]:
        """`GET /v2/models/{name}[/versions/{version}]`."""
        return model_metadata(self.core, name, version)

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
            probabilities = await self.core.infer(entry, decoded.rows, context)
        except ServingError as exc:
            raise tensor_error(exc, entry.kind.tensor_spec.name) from None
        return self.encode(entry, decoded, probabilities, context.warnings)

    async def decode(
        self,
        entry: CardedVersion,
        body: bytes,
        headers: dict[str, str | None],
        context: RequestContext,
        receive: Receive | None = None,
    ) -> DecodedRequest:
        """An infer request body -> the version's rows and the outputs asked for: all on a
        decoding thread when the body is large or compressed; otherwise parsed here, and its
        rows made on a decoding thread only where the input kind says so (image files)."""
        compressed = (headers.get("content-encoding") or "identity").strip().lower() != "identity"
        try:
            if compressed or len(body) > LARGE_BODY_BYTES:
                return await self.core.off_loop(
                    lambda budget: self._decode(entry, body, headers, budget), context, receive
                )
            parsed = self._parse(entry, body, headers)
            if parsed.off_loop:
                rows = await self.core.off_loop(parsed.make_rows, context, receive)
            else:
                rows = parsed.make_rows(None)
            return DecodedRequest(parsed.request, rows, parsed.outputs)
        except InvalidInput as exc:
            raise BadRequest(exc.message) from None

    def _decode(
        self,
        entry: CardedVersion,
        body: bytes,
        headers: dict[str, str | None],
        budget: RequestBudget | None,
    ) -> DecodedRequest:
        parsed = self._parse(entry, body, headers)
        return DecodedRequest(parsed.request, parsed.make_rows(budget), parsed.outputs)

    def _parse(
        self, entry: CardedVersion, body: bytes, headers: dict[str, str | None]
    ) -> _ParsedRequest:
        adapter = entry.kind
        header_length = headers.get(HEADER_LENGTH.lower())
        limit = adapter.max_values(self.limits.max_instances)
        body = decompress_body(
            body,
            headers.get("content-encoding"),
            self.limits.max_body_bytes,
            # Only an all-JSON body's commas are values; binary tensor data has any bytes.
            None
            if header_length is not None or limit is None
            else lambda values: self.core.check_value_count(entry, values),
        )
        header, binary = split_body(body, header_length)
        if len(header) > LARGE_BODY_BYTES:
            self.core.check_value_count(entry, header.count(b",") + 1)
        request = parse_request(header)
        outputs = requested_outputs(request, output_names(entry.card))
        spec, features = adapter.tensor_spec, adapter.feature_specs
        if takes_named_inputs([t.name for t in request.inputs], spec, features):
            tensors = decode_named_inputs(
                request, binary, features, entry.name, self.limits.max_instances, spec
            )
            return _ParsedRequest(
                request, outputs, functools.partial(adapter.feature_rows, tensors), False
            )
        datatype, values = decode_input(
            request, binary, spec, entry.name, self.limits.max_instances
        )
        return _ParsedRequest(
            request,
            outputs,
            functools.partial(adapter.tensor_rows, datatype, values),
            adapter.rows_off_loop(datatype, int(values.nbytes)),
        )

    def encode(
        self,
        entry: CardedVersion,
        decoded: DecodedRequest,
        probabilities: np.ndarray,
        warnings: Sequence[RowWarnings] = (),
    ) -> tuple[bytes, dict[str, str], str]:
        """(body, extra headers, media type) of the infer response."""
        return entry.task.encode_v2(
            entry.card,
            entry.name,
            entry.version,
            decoded.request.id,
            probabilities,
            decoded.outputs,
            warnings,
        )
