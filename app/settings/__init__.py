"""Service settings: read once from the environment (prefix `SYNERGY_`), then passed down.

The knobs live in typed groups (`settings.serving`, `.batching`, `.store`, ...; see
`groups.py`, `monitoring.py`, `explain.py`), and each component takes only its group. The
environment stays flat: every field of every group is the variable `SYNERGY_<FIELD>`
(case-insensitive), exactly as when the settings were one flat class, so
`SYNERGY_MAX_BATCH_WAIT_MS` sets `settings.batching.max_batch_wait_ms`. Keyword arguments
are flat too (`Settings(port=8001, store_dir=...)`): `GROUP_OF` maps each name to its group,
the one place that does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, Field, create_model, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from app.settings.explain import ExplainSettings
from app.settings.groups import (
    BatchingSettings,
    ConnectionSettings,
    GrpcSettings,
    LimitsSettings,
    LoggingSettings,
    ModelBatchingSettings,
    RepositorySettings,
    SecuritySettings,
    ServingSettings,
)
from app.settings.monitoring import (
    DriftSettings,
    PayloadLogSettings,
    PromotionSettings,
    StoreSettings,
)

__all__ = [
    "BatchingSettings",
    "ConfigError",
    "ConnectionSettings",
    "DriftSettings",
    "ExplainSettings",
    "GrpcSettings",
    "LimitsSettings",
    "LoggingSettings",
    "ModelBatchingSettings",
    "PayloadLogSettings",
    "PromotionSettings",
    "RepositorySettings",
    "SecuritySettings",
    "ServingSettings",
    "Settings",
    "StoreSettings",
    "flat_fields",
    "variable_of",
]

ENV_PREFIX = "SYNERGY_"
_CONFIG = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)


class ConfigError(ValueError):
    """A setting that cannot work; `python -m app` prints it as one line and exits 2."""


class Settings(BaseSettings):
    """All knobs of the service, in groups. Environment variables are `SYNERGY_<FIELD>` for
    every field of every group (case-insensitive); see `python -m app --help`."""

    model_config = _CONFIG

    serving: ServingSettings = Field(default_factory=ServingSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    batching: BatchingSettings = Field(default_factory=BatchingSettings)
    connections: ConnectionSettings = Field(default_factory=ConnectionSettings)
    grpc: GrpcSettings = Field(default_factory=GrpcSettings)
    repository: RepositorySettings = Field(default_factory=RepositorySettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    explain: ExplainSettings = Field(default_factory=ExplainSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    drift: DriftSettings = Field(default_factory=DriftSettings)
    promotion: PromotionSettings = Field(default_factory=PromotionSettings)
    payload_logging: PayloadLogSettings = Field(default_factory=PayloadLogSettings)

    @model_validator(mode="before")
    @classmethod
    def _flat_names(cls, data: Any) -> Any:
        # `Settings.model_validate({"port": 8001})` skips the sources: nest its names here.
        return nest(data) if isinstance(data, dict) else data

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The same sources, in the same order, as pydantic-settings' default; the environment
        # and dotenv ones read the flat model (so variable names, JSON decoding of dict
        # settings and `.env` behave as they always did), and all nest what they read.
        assert isinstance(dotenv_settings, DotEnvSettingsSource)
        flat_env = EnvSettingsSource(_FLAT, case_sensitive=False, env_prefix=ENV_PREFIX)
        flat_dotenv = DotEnvSettingsSource(
            _FLAT,
            env_file=dotenv_settings.env_file,
            env_file_encoding=dotenv_settings.env_file_encoding,
            case_sensitive=False,
            env_prefix=ENV_PREFIX,
        )
        return (
            _Grouped(settings_cls, init_settings),
            _Grouped(settings_cls, flat_env),
            _Grouped(settings_cls, flat_dotenv),
            file_secret_settings,
        )


def _groups() -> Iterator[tuple[str, type[BaseModel]]]:
    for group, field in Settings.model_fields.items():
        kind = field.annotation
        assert isinstance(kind, type) and issubclass(kind, BaseModel)
        yield group, kind


GROUP_OF: dict[str, str] = {name: group for group, kind in _groups() for name in kind.model_fields}
"""Each flat setting name (the variable without `SYNERGY_`, lower case) -> its group."""
# A group named like a setting would make `nest` ambiguous (is `x={...}` the group or a value?).
assert not set(GROUP_OF) & set(Settings.model_fields), "a group is named like a setting"


def flat_fields() -> Iterator[tuple[str, FieldInfo]]:
    """(flat name, field) of every setting, group by group: the variable is
    `SYNERGY_<NAME>`."""
    for _, kind in _groups():
        yield from kind.model_fields.items()


class _FlatBase(BaseSettings):
    model_config = _CONFIG


# Every field of every group, flat: the one class the environment and `.env` are read through.
_FLAT: type[BaseSettings] = create_model(  # type: ignore[call-overload]
    "Settings",
    __base__=_FlatBase,
    **{name: (field.annotation, field) for name, field in flat_fields()},
)


def variable_of(loc: tuple[int | str, ...]) -> str:
    """The environment variable a validation error's location points at, or '' when it is a
    whole group (a rule between settings)."""
    parts = list(loc)
    if parts and parts[0] in Settings.model_fields:
        parts = parts[1:]
    if not parts:
        return ""
    return ENV_PREFIX + ".".join(str(part) for part in parts).upper()


class _Grouped(PydanticBaseSettingsSource):
    """A source of flat names (`port=...`) handed to the root as groups (`serving={...}`)."""

    def __init__(self, settings_cls: type[BaseSettings], flat: PydanticBaseSettingsSource):
        super().__init__(settings_cls)
        self.flat = flat

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads the flat source at once

    def __call__(self) -> dict[str, Any]:
        return nest(self.flat())


def nest(values: dict[str, Any]) -> dict[str, Any]:
    """Flat setting names (`port=...`) moved into their groups (`serving={"port": ...}`);
    groups given whole, and keys that are no setting, are kept as they are."""
    grouped: dict[str, Any] = {}
    for name, value in values.items():
        group = GROUP_OF.get(name.lower())
        if group is None:
            grouped.setdefault(name, value)
            continue
        into = grouped.get(group)
        if isinstance(into, BaseModel):  # a group given whole, and a setting of it as well
            into = into.model_dump(exclude_unset=True)
        if not isinstance(into, dict):
            into = {}
        grouped[group] = {**into, name.lower(): value}
    return grouped
