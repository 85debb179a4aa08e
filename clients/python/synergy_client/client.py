"""`SynergyClient` (blocking) and `AsyncSynergyClient` (asyncio), on httpx.

Both share everything but the I/O: building requests, retry decisions and parsing live in
module functions here, so the two cannot drift apart.

Retries: only a 503 that carries `Retry-After` is retried, for every call including predict.
The server answers 503 when a model's queue is full, while it is still loading, when it failed
to load, or when the server is shutting down, always before any work on the request, so
sending it again cannot predict twice. The client waits as long as the header asks, never
less; when it asks for more than `max_retry_wait_s` (a model that failed to load says 30 s),
the error is raised at once, carrying `retry_after_s`, rather than blocking the caller. Nothing
else is retried: after a timeout or a dropped connection the server may have done the work.

Timeout: a number of seconds bounds the whole call (every try, the waits between them, and
reading the answer, however slowly the server sends it); an `httpx.Timeout` keeps httpx's
per-phase meaning (each connect, read, write, pool wait).
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import json
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, Self, TypeVar
from urllib.parse import quote

import httpx

from synergy_client import __version__
from synergy_client.errors import NetworkError, SynergyError, error_class
from synergy_client.inputs import ImageLike, image_instances, json_instances, text_instances
from synergy_client.responses import (
    ModelCard,
    ModelMetrics,
    ModelSummary,
    Predictions,
    Readiness,
)

T = TypeVar("T")

DEFAULT_BASE_URL: Final = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT_S: Final = 30.0
DEFAULT_MAX_RETRIES: Final = 3
DEFAULT_MAX_RETRY_WAIT_S: Final = 10.0


# ---------------------------------------------------------------------- shared, no I/O
def _model_path(model: str, version: int | None) -> str:
    if not isinstance(model, str) or not model:
        raise TypeError(f"model must be a model name such as 'iris-knn', got {model!r}")
    path = f"/v1/models/{quote(model, safe='')}"
    if version is not None:
        if isinstance(version, bool) or not isinstance(version, int):
            raise TypeError(f"version must be an int, got {version!r}")
        path += f"/versions/{version}"
    return path


def _predict_body(instances: list[Any]) -> bytes:
    try:
        return json.dumps(
            {"instances": instances}, allow_nan=False, ensure_ascii=False, separators=(",", ":")
        ).encode()
    except ValueError as exc:
        raise ValueError(
            "instances contain NaN or Infinity, which JSON cannot carry; replace them with numbers"
        ) from exc


def _with_request_id(predictions: Predictions, response: httpx.Response) -> Predictions:
    return dataclasses.replace(predictions, request_id=response.headers.get("x-request-id"))


def _feedback_body(request_id: str | Predictions, labels: Sequence[str | None]) -> bytes:
    if isinstance(request_id, Predictions):
        if request_id.request_id is None:
            raise ValueError("these predictions carry no request id (X-Request-ID)")
        request_id = request_id.request_id
    return json.dumps({"request_id": request_id, "labels": list(labels)}).encode()


def _retry_after_s(response: httpx.Response) -> float | None:
    """The `Retry-After` header in seconds (delta-seconds or an HTTP date), None if absent
    or unreadable."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _error(response: httpx.Response) -> SynergyError:
    """The exception for an error response, with the server's `{"error"}` message."""
    status = response.status_code
    message: str | None = None
    try:
        body = response.json()
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            message = body["error"]
    except ValueError:
        pass
    if message is None:  # not the server's shape: a proxy or another service answered
        text = response.text.strip()
        message = f"{response.reason_phrase or 'error'}: {text[:200] or '(empty body)'}"
    return error_class(status)(message, status=status, retry_after_s=_retry_after_s(response))


def _json(response: httpx.Response, *, ok: Sequence[int] = (200,)) -> Any:
    """The response's JSON, or raise the matching SynergyError."""
    if response.status_code not in ok:
        raise _error(response)
    try:
        return response.json()
    except ValueError:
        raise SynergyError(
            f"{response.request.url} answered {response.status_code} without JSON: is "
            "base_url a Synergy Serve server?",
            status=response.status_code,
        ) from None


def _parse(parse: Callable[[Any], T], response: httpx.Response, *, ok: Sequence[int] = (200,)) -> T:
    """`parse(JSON)` of an answer with an `ok` status, or raise: the matching SynergyError
    for an error status, a SynergyError for an answer that is not the server's shape."""
    data = _json(response, ok=ok)
    try:
        return parse(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SynergyError(
            f"{response.request.url} answered in an unexpected shape ({type(exc).__name__}: "
            f"{exc}): is base_url a Synergy Serve server of a compatible version?",
            status=response.status_code,
        ) from None


def _models(data: Any) -> list[ModelSummary]:
    return [ModelSummary.from_json(m) for m in data["models"]]


def _alive(data: Any) -> bool:
    return bool(data["status"] == "alive")


def _readiness(response: httpx.Response) -> Readiness:
    ready = response.status_code == 200
    return _parse(lambda data: Readiness.from_json(data, ready=ready), response, ok=(200, 503))


def _network_error(exc: httpx.TransportError, request_url: str) -> NetworkError:
    if isinstance(exc, httpx.TimeoutException):
        return NetworkError(f"no answer from {request_url} within the timeout ({exc!r})")
    return NetworkError(f"could not reach {request_url}: {exc}")


class _Settings:
    """Constructor arguments both clients share."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        timeout: float | httpx.Timeout | None,
        max_retries: int,
        max_retry_wait_s: float,
        headers: dict[str, str] | None,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        if max_retry_wait_s < 0:
            raise ValueError("max_retry_wait_s must be 0 or more")
        self.max_retries = max_retries
        self.max_retry_wait_s = max_retry_wait_s
        self.headers = {
            "Accept": "application/json",
            "User-Agent": f"synergy-serve-client/{__version__}",
            **(headers or {}),
        }
        if api_key is not None:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def deadline(self) -> float | None:
        """time.monotonic() by which a call must be done (None: no whole-call bound)."""
        if isinstance(self.timeout, int | float):
            return time.monotonic() + float(self.timeout)
        return None

    def time_left(self, deadline: float | None, url: str) -> float | httpx.Timeout | None:
        """The timeout of the next try: what is left of the call's (NetworkError when none)."""
        if deadline is None:
            return self.timeout
        left = deadline - time.monotonic()
        if left <= 0:
            raise NetworkError(f"no answer from {url} within the timeout ({self.timeout:g} s)")
        return left

    def retry_fits(self, deadline: float | None, delay_s: float) -> bool:
        """Whether waiting `delay_s` before a retry leaves the call within its deadline."""
        return deadline is None or time.monotonic() + delay_s < deadline

    def retry_delay_s(self, response: httpx.Response, retries_done: int) -> float | None:
        """How long to wait before sending again (the server's Retry-After), or None to not
        retry: not a 503, no usable Retry-After, retries used up, or a longer wait than
        `max_retry_wait_s`."""
        if response.status_code != 503 or retries_done >= self.max_retries:
            return None
        retry_after = _retry_after_s(response)
        if retry_after is None or retry_after > self.max_retry_wait_s:
            return None
        return retry_after


_JSON = {"Content-Type": "application/json"}


# ---------------------------------------------------------------------- blocking
class SynergyClient:
    """Blocking client of a Synergy Serve server's friendly API (V1).

    Args:
        base_url: where the server listens, e.g. "http://127.0.0.1:8000" (a path prefix is
            kept, for servers behind a proxy).
        api_key: sent as `Authorization: Bearer <key>` (servers with SYNERGY_API_KEYS set).
        timeout: seconds for the whole call (every try, the waits between them, and the
            answer however slowly it comes), an `httpx.Timeout` (httpx's per-phase limits),
            or None for no limit.
        max_retries: how many times a 503 with `Retry-After` is sent again (0: never).
        max_retry_wait_s: the longest wait before a retry, in seconds: the client waits as
            long as `Retry-After` says, and raises at once when it says more.
        headers: extra headers on every request.
        transport: an httpx transport (tests, or `httpx.HTTPTransport(retries=2)` to retry
            failed connection attempts, which never reached the server).

    Errors: every method raises a `SynergyError` subclass: `NotFound`, `InvalidInput`, ...
    with the HTTP status and the server's message, or `NetworkError` when no answer came.

    Use as a context manager, or call `close()`, to release its connections.
    """

    _sleep: Callable[[float], None] = staticmethod(time.sleep)

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        api_key: str | None = None,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT_S,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_retry_wait_s: float = DEFAULT_MAX_RETRY_WAIT_S,
        headers: dict[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._settings = _Settings(
            base_url, api_key, timeout, max_retries, max_retry_wait_s, headers
        )
        self._http = httpx.Client(
            base_url=self._settings.base_url,
            headers=self._settings.headers,
            timeout=timeout,
            transport=transport,
        )

    @property
    def base_url(self) -> str:
        return self._settings.base_url

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _send(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        retry: bool = True,
    ) -> httpx.Response:
        retries_done = 0
        deadline = self._settings.deadline()
        url = self.base_url + path
        while True:
            try:
                response = self._request(method, path, content, deadline, url)
            except httpx.TransportError as exc:
                raise _network_error(exc, url) from exc
            delay = self._settings.retry_delay_s(response, retries_done) if retry else None
            if delay is None or not self._settings.retry_fits(deadline, delay):
                return response
            retries_done += 1
            self._sleep(delay)

    def _request(
        self, method: str, path: str, content: bytes | None, deadline: float | None, url: str
    ) -> httpx.Response:
        """One try, read whole within the call's deadline: streamed, so that an answer sent
        a byte at a time is cut off at the deadline rather than each read's timeout."""
        request = self._http.build_request(
            method,
            path,
            content=content,
            headers=_JSON if content is not None else None,
            timeout=self._settings.time_left(deadline, url),
        )
        response = self._http.send(request, stream=True)
        try:
            chunks = []
            for chunk in response.iter_bytes():
                chunks.append(chunk)
                if deadline is not None and time.monotonic() > deadline:
                    raise httpx.ReadTimeout("the whole call took longer", request=request)
        finally:
            response.close()
        # The body decoded already: the answer without its transfer headers.
        headers = [
            (name, value)
            for name, value in response.headers.multi_items()
            if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        return httpx.Response(
            response.status_code, headers=headers, content=b"".join(chunks), request=request
        )

    # -- predictions
    def predict(self, model: str, instances: Any, version: int | None = None) -> Predictions:
        """Predict `instances` with `model` (its latest ready version, or `version`).

        instances: a list with one instance per prediction, as the model's card describes:
            iris-knn `{"sepal_length": 6.7, ...}` or `[6.7, 3.0, 5.2, 2.3]`; binary-mlp 20
            numbers; mnist-cnn a 28x28 grid or `{"b64": ...}`; imdb-sentiment a string. A
            NumPy array (the batch, or each instance) is sent as nested lists.

        Returns the predictions in the order of `instances`. Raises InvalidInput (422),
        NotFound (404), PayloadTooLarge (413), Unavailable (503 once retries ran out), ...
        """
        body = _predict_body(json_instances(instances))
        response = self._send("POST", _model_path(model, version) + ":predict", content=body)
        return _with_request_id(_parse(Predictions.from_json, response), response)

    def predict_image(
        self, model: str, image: ImageLike | Sequence[ImageLike], version: int | None = None
    ) -> Predictions:
        """Predict one image, or a list of them: file paths, file bytes (PNG, JPEG, ...),
        binary files, PIL images or NumPy arrays (see `synergy_client.inputs.ImageLike`).
        One prediction per image."""
        return self.predict(model, image_instances(image), version)

    def predict_text(
        self, model: str, texts: str | Sequence[str], version: int | None = None
    ) -> Predictions:
        """Predict one text or a list of them. One prediction per text."""
        return self.predict(model, text_instances(texts), version)

    # -- explanations
    def explain(
        self, model: str, instances: Any, version: int | None = None
    ) -> list[dict[str, Any]]:
        """Why `model` predicts what it does for each instance (the same instances as
        `predict`; images as `image_instances(...)` gives them, or use `explain_image`).

        Returns one explanation per instance, in order: `label`, `probabilities`,
        `explained_label`, `method` and `completeness`, and by input kind `attributions`
        (tabular: feature -> share of the explained class's probability), `attribution_map`
        and `overlay_png` (images, 28x28 and base64 PNG) or `tokens` (text). Raises
        PayloadTooLarge (more instances than the server explains at once: 16 by default),
        Unavailable (the explanation queue is full), DeadlineExceeded (504), ..."""
        body = _predict_body(json_instances(instances))
        response = self._send("POST", _model_path(model, version) + ":explain", content=body)
        return list(_json(response)["explanations"])

    def explain_image(
        self, model: str, image: ImageLike | Sequence[ImageLike], version: int | None = None
    ) -> list[dict[str, Any]]:
        """`explain` for images: file paths, bytes, binary files, PIL images or NumPy arrays."""
        return self.explain(model, image_instances(image), version)

    # -- models
    def models(self) -> list[ModelSummary]:
        """Every model the server knows, with its versions and their state."""
        return _parse(_models, self._send("GET", "/v1/models"))

    def card(self, model: str, version: int | None = None) -> ModelCard:
        """The model card (latest version, or `version`) and how the server runs it."""
        return _parse(ModelCard.from_json, self._send("GET", _model_path(model, version)))

    def model_metrics(self, model: str, version: int | None = None) -> ModelMetrics:
        """Held-out metrics from training and live serving stats since the server started."""
        path = _model_path(model, version) + "/metrics"
        return _parse(ModelMetrics.from_json, self._send("GET", path))

    # -- monitoring
    def feedback(
        self, model: str, request_id: str | Predictions, labels: Sequence[str | None]
    ) -> dict[str, Any]:
        """The true labels of an earlier prediction (its `Predictions`, or its request id):
        one label or None per instance, in order. Returns once the server stored them.
        Raises NotFound (no such prediction), InvalidInput (wrong count, unknown label)."""
        body = _feedback_body(request_id, labels)
        response = self._send("POST", _model_path(model, None) + ":feedback", content=body)
        return dict(_json(response))

    def monitoring(self, model: str, version: int | None = None) -> dict[str, Any]:
        """Live accuracy against the card and drift, per version (see the server's docs)."""
        path = _model_path(model, version) + "/monitoring"
        return dict(_json(self._send("GET", path)))

    # -- health
    def live(self) -> bool:
        """True when the server process answers (raises NetworkError when it does not)."""
        return _parse(_alive, self._send("GET", "/health/live", retry=False))

    def ready(self) -> Readiness:
        """Whether every model version is loaded and warm, and each one's state. A server
        that is not ready yet is not an error: `ready` is False."""
        return _readiness(self._send("GET", "/health/ready", retry=False))

    def model_ready(self, model: str) -> Readiness:
        """One model's readiness (`GET /health/ready/{model}`): `ready` only when it serves
        and none of its versions failed or is loading; `status` says which (`degraded`: it
        serves, but a version failed) and `failed` why. Raises NotFound for an unknown model."""
        return _readiness(self._send("GET", f"/health/ready/{quote(model, safe='')}", retry=False))


# ---------------------------------------------------------------------- asyncio
class AsyncSynergyClient:
    """The asyncio twin of `SynergyClient`: the same arguments, methods and errors, each
    method a coroutine; `async with`, or `await aclose()`."""

    _sleep: Callable[[float], Awaitable[None]] = staticmethod(asyncio.sleep)

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        api_key: str | None = None,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT_S,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_retry_wait_s: float = DEFAULT_MAX_RETRY_WAIT_S,
        headers: dict[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = _Settings(
            base_url, api_key, timeout, max_retries, max_retry_wait_s, headers
        )
        self._http = httpx.AsyncClient(
            base_url=self._settings.base_url,
            headers=self._settings.headers,
            timeout=timeout,
            transport=transport,
        )

    @property
    def base_url(self) -> str:
        return self._settings.base_url

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _send(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        retry: bool = True,
    ) -> httpx.Response:
        retries_done = 0
        deadline = self._settings.deadline()
        url = self.base_url + path
        while True:
            timeout = self._settings.time_left(deadline, url)
            try:
                # The whole try within what is left of the call, however slowly it answers.
                async with asyncio.timeout(timeout if isinstance(timeout, float) else None):
                    response = await self._http.request(
                        method,
                        path,
                        content=content,
                        headers=_JSON if content is not None else None,
                        timeout=timeout,
                    )
            except TimeoutError as exc:
                raise NetworkError(
                    f"no answer from {url} within the timeout ({self._settings.timeout} s)"
                ) from exc
            except httpx.TransportError as exc:
                raise _network_error(exc, url) from exc
            delay = self._settings.retry_delay_s(response, retries_done) if retry else None
            if delay is None or not self._settings.retry_fits(deadline, delay):
                return response
            retries_done += 1
            await self._sleep(delay)

    async def predict(self, model: str, instances: Any, version: int | None = None) -> Predictions:
        """See `SynergyClient.predict`."""
        body = _predict_body(json_instances(instances))
        response = await self._send("POST", _model_path(model, version) + ":predict", content=body)
        return _with_request_id(_parse(Predictions.from_json, response), response)

    async def predict_image(
        self, model: str, image: ImageLike | Sequence[ImageLike], version: int | None = None
    ) -> Predictions:
        """See `SynergyClient.predict_image`."""
        return await self.predict(model, image_instances(image), version)

    async def predict_text(
        self, model: str, texts: str | Sequence[str], version: int | None = None
    ) -> Predictions:
        """See `SynergyClient.predict_text`."""
        return await self.predict(model, text_instances(texts), version)

    async def explain(
        self, model: str, instances: Any, version: int | None = None
    ) -> list[dict[str, Any]]:
        """See `SynergyClient.explain`."""
        body = _predict_body(json_instances(instances))
        response = await self._send("POST", _model_path(model, version) + ":explain", content=body)
        return list(_json(response)["explanations"])

    async def explain_image(
        self, model: str, image: ImageLike | Sequence[ImageLike], version: int | None = None
    ) -> list[dict[str, Any]]:
        """See `SynergyClient.explain_image`."""
        return await self.explain(model, image_instances(image), version)

    async def models(self) -> list[ModelSummary]:
        """See `SynergyClient.models`."""
        return _parse(_models, await self._send("GET", "/v1/models"))

    async def card(self, model: str, version: int | None = None) -> ModelCard:
        """See `SynergyClient.card`."""
        response = await self._send("GET", _model_path(model, version))
        return _parse(ModelCard.from_json, response)

    async def model_metrics(self, model: str, version: int | None = None) -> ModelMetrics:
        """See `SynergyClient.model_metrics`."""
        path = _model_path(model, version) + "/metrics"
        return _parse(ModelMetrics.from_json, await self._send("GET", path))

    async def feedback(
        self, model: str, request_id: str | Predictions, labels: Sequence[str | None]
    ) -> dict[str, Any]:
        """See `SynergyClient.feedback`."""
        body = _feedback_body(request_id, labels)
        response = await self._send("POST", _model_path(model, None) + ":feedback", content=body)
        return dict(_json(response))

    async def monitoring(self, model: str, version: int | None = None) -> dict[str, Any]:
        """See `SynergyClient.monitoring`."""
        path = _model_path(model, version) + "/monitoring"
        return dict(_json(await self._send("GET", path)))

    async def live(self) -> bool:
        """See `SynergyClient.live`."""
        return _parse(_alive, await self._send("GET", "/health/live", retry=False))

    async def ready(self) -> Readiness:
        """See `SynergyClient.ready`."""
        return _readiness(await self._send("GET", "/health/ready", retry=False))

    async def model_ready(self, model: str) -> Readiness:
        """See `SynergyClient.model_ready`."""
        path = f"/health/ready/{quote(model, safe='')}"
        return _readiness(await self._send("GET", path, retry=False))
