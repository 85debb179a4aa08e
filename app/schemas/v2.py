"""Open Inference Protocol (V2) REST bodies, as the KServe/Triton specification writes them.

`data` stays untyped here: its element type follows the tensor's `datatype`, which
`app.codecs.v2` checks together with the shape (pydantic alone cannot tie the two together).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

ParameterValue = StrictStr | StrictBool | StrictInt | StrictFloat
Parameters = dict[str, ParameterValue]


class RequestInput(BaseModel):
    """One named, typed input tensor."""

    name: str = Field(min_length=1, description="The model's input name (see its metadata).")
    shape: list[Annotated[int, Field(ge=0, le=2**31 - 1)]] = Field(
        description="The tensor's shape, batch dimension first."
    )
    datatype: str = Field(description="BOOL, UINT8, ..., INT64, FP16, FP32, FP64 or BYTES.")
    parameters: Parameters | None = Field(
        default=None, description="`binary_data_size` when the data follows the JSON header."
    )
    data: Any = Field(
        default=None,
        description="Row-major values, flat or nested. BYTES: strings (an image as base64).",
    )


class RequestOutput(BaseModel):
    """An output the client wants back (`label` and/or `probabilities`)."""

    name: str = Field(min_length=1)
    parameters: Parameters | None = Field(
        default=None, description="`binary_data: true` to get this output as binary data."
    )


class InferenceRequest(BaseModel):
    """`POST /v2/models/{name}/infer`."""

    id: str | None = Field(default=None, description="Echoed in the response.")
    parameters: Parameters | None = Field(
        default=None, description="`binary_data_output: true` for binary outputs."
    )
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = Field(
        default=None, description="The outputs to return; all when omitted."
    )


class ResponseOutput(BaseModel):
    """One output tensor."""

    name: str
    shape: list[int]
    datatype: str
    parameters: Parameters | None = None
    data: list[Any] | None = Field(
        default=None, description="Flat, row-major; absent when sent as binary data."
    )


class InferenceResponse(BaseModel):
    """The answer to an infer request."""

    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: Parameters | None = None
    outputs: list[ResponseOutput]


class TensorMetadata(BaseModel):
    """Name, datatype and shape of a model input or output; -1 is a variable dimension."""

    name: str
    datatype: str
    shape: list[int]
    parameters: Parameters | None = None


class ModelMetadata(BaseModel):
    """`GET /v2/models/{name}`."""

    model_config = ConfigDict(protected_namespaces=())
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    labels: list[str] = Field(description="Class names, in the order of `probabilities`.")
    parameters: Parameters | None = None


class ServerMetadata(BaseModel):
    """`GET /v2`."""

    name: str
    version: str
    extensions: list[str]


class ServerLive(BaseModel):
    """`GET /v2/health/live`."""

    live: bool


class ServerReady(BaseModel):
    """`GET /v2/health/ready`."""

    ready: bool


class ModelReady(BaseModel):
    """`GET /v2/models/{name}/ready`."""

    name: str
    version: str | None = None
    ready: bool


class ConfigTensor(BaseModel):
    """An input or output in Triton's model configuration: dims leave out the batch
    dimension (max_batch_size > 0); -1 is a variable dimension."""

    name: str
    data_type: str = Field(description='"TYPE_FP32", "TYPE_STRING" (V2\'s BYTES), ...')
    dims: list[int]
    format: str | None = None


class ModelConfig(BaseModel):
    """`GET /v2/models/{name}/config`: Triton's model configuration (model_config.proto as
    JSON), as tritonclient's `get_model_config` and perf_analyzer read it."""

    model_config = ConfigDict(protected_namespaces=())
    name: str
    platform: str
    backend: str
    version_policy: dict[str, Any] = Field(
        description='{"latest": {"num_versions": N}}, {"all": {}} or '
        '{"specific": {"versions": [...]}}'
    )
    max_batch_size: int = Field(description="Rows per model call (the batcher's).")
    input: list[ConfigTensor]
    output: list[ConfigTensor]
    dynamic_batching: dict[str, Any]
    instance_group: list[dict[str, Any]]
    parameters: dict[str, dict[str, str]]


class Duration(BaseModel):
    """A count and the total time of what it counts, in nanoseconds."""

    count: int
    ns: int


class InferenceStatistics(BaseModel):
    """Aggregates of one version since the server started."""

    success: Duration
    fail: Duration
    queue: Duration
    compute_input: Duration
    compute_infer: Duration
    compute_output: Duration
    cache_hit: Duration
    cache_miss: Duration


class BatchStatistics(BaseModel):
    """Model calls of one batch size."""

    batch_size: int
    compute_input: Duration
    compute_infer: Duration
    compute_output: Duration


class ShadowStatistics(BaseModel):
    """What a version computed as another version's shadow, since the server started."""

    inference_count: int = Field(description="Rows of shadow copies computed.")
    queue: Duration
    compute_infer: Duration


class VersionStatistics(BaseModel):
    """One version's statistics."""

    name: str
    version: str
    last_inference: int = Field(description="Milliseconds since the epoch; 0: never.")
    inference_count: int = Field(
        description="Rows of the version's own requests computed by successful model calls."
    )
    execution_count: int = Field(
        description="Successful model calls (batches) that carried the version's own requests."
    )
    inference_stats: InferenceStatistics
    shadow_stats: ShadowStatistics = Field(
        description="Not Triton's: shadow copies of another version's requests that this "
        "version computed; they are not counted in the figures above."
    )
    batch_stats: list[BatchStatistics]


class ModelStatistics(BaseModel):
    """`GET /v2/models[/{name}[/versions/{version}]]/stats`: Triton's statistics."""

    model_config = ConfigDict(protected_namespaces=())
    model_stats: list[VersionStatistics]
