"""A model's serving config: the optional `models/<name>/config.json`, re-read on every scan.

    {
      "version_policy": {"latest": 2} | {"all": true} | {"specific": [1, 3]},
      "labels": {"stable": 2, "canary": 3},
      "traffic": {"stable": 90, "canary": 10},
      "shadow": "canary",
      "promotion": {"min_feedback_rows": 200, "max_accuracy_drop": 0.02}
    }

- `version_policy` (TF Serving's three): which version folders are loaded and served. Absent:
  the server's default, `{"latest": SYNERGY_MAX_VERSIONS_PER_MODEL}`.
- `labels`: names for versions, served at `POST /v1/models/{name}/labels/{label}:predict`
  and selectable on any route with the `X-Model-Label` header.
- `traffic`: weights (any non-negative numbers; their shares count) over labels or versions
  for requests that name neither a version nor a label. Absent: every such request goes to
  the newest ready version (TF Serving's rule). Labels alone do not move traffic.
- `shadow`: a label or version that also receives a copy of the routed traffic; its answers
  are discarded, counted and compared with the primary's.

Every version named by `labels`, `traffic` or `shadow` must be one the policy serves: a
config that names another is invalid (with the field named) and the previous one stays in
force, as for any other invalid config.

- `promotion`: when the shadow or canary replaces the version it is compared with, or is
  rolled back (`app.repository.rules`; docs/promotion.md). Decisions live in the prediction
  store and are laid over this config (`app.repository.promotion`); the file is not written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from app.repository.rules import PromotionRules
from app.schemas.versions import VersionNumber, not_a_version, parse_version

CONFIG_FILENAME = "config.json"
LABEL_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"
Label = Annotated[str, StringConstraints(pattern=LABEL_PATTERN)]
Version = VersionNumber


@dataclass(frozen=True)
class VersionPolicy:
    """Which version folders of a model the server loads and serves (TF Serving's term).

    `kind` "latest": the `num_versions` highest; "all": every one; "specific": those listed.
    """

    kind: str = "latest"
    num_versions: int = 1
    versions: tuple[int, ...] = ()

    def select(self, candidates: list[int]) -> list[int]:
        """The versions to serve, ascending, out of the version folders found."""
        if self.kind == "all":
            return sorted(candidates)
        if self.kind == "specific":
            return sorted(set(candidates) & set(self.versions))
        return sorted(candidates)[-self.num_versions :]

    def describe(self) -> str:
        """For messages: what the policy serves."""
        if self.kind == "all":
            return "every version"
        if self.kind == "specific":
            return "version(s) " + ", ".join(str(v) for v in self.versions)
        return f"the latest {self.num_versions} version(s)"

    def to_json(self) -> dict[str, Any]:
        """The policy as config.json writes it."""
        if self.kind == "all":
            return {"all": True}
        if self.kind == "specific":
            return {"specific": list(self.versions)}
        return {"latest": self.num_versions}


class _Latest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    latest: int = Field(ge=1, le=1000, description="Serve the N highest versions.")


class _All(BaseModel):
    model_config = ConfigDict(extra="forbid")
    all: bool = Field(description="true: serve every version folder.")


class _Specific(BaseModel):
    model_config = ConfigDict(extra="forbid")
    specific: list[Version] = Field(min_length=1, max_length=1000)


class ModelConfig(BaseModel):
    """The schema of `models/<name>/config.json` (see the module's docstring)."""

    model_config = ConfigDict(extra="forbid")

    version_policy: _Latest | _All | _Specific | None = None
    labels: dict[Label, Version] = Field(default_factory=dict, max_length=100)
    traffic: dict[str, Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(
        default_factory=dict, max_length=100
    )
    shadow: Label | Version | None = None
    promotion: PromotionRules | None = None

    @model_validator(mode="after")
    def _references(self) -> ModelConfig:
        if isinstance(self.version_policy, _All) and not self.version_policy.all:
            raise ValueError(
                'version_policy: {"all": false} serves nothing; use "latest" or "specific"'
            )
        for key in self.traffic:
            if key.isascii() and key.isdigit() and not _is_version_text(key):
                raise ValueError(f"traffic: {not_a_version(key)}")
            if not _is_version_text(key) and key not in self.labels:
                raise ValueError(
                    f"traffic: {key!r} is neither a label in labels nor a version number"
                )
        if self.traffic and sum(self.traffic.values()) <= 0:
            raise ValueError("traffic: the weights add up to 0; give at least one a weight")
        if isinstance(self.shadow, str) and self.shadow not in self.labels:
            raise ValueError(f"shadow: {self.shadow!r} is not a label in labels")
        return self

    def policy(self, default: VersionPolicy) -> VersionPolicy:
        """The version policy this config sets, else `default`."""
        match self.version_policy:
            case _Latest(latest=n):
                return VersionPolicy("latest", num_versions=n)
            case _All():
                return VersionPolicy("all")
            case _Specific(specific=versions):
                return VersionPolicy("specific", versions=tuple(sorted(set(versions))))
        return default

    def version_of(self, target: str | int) -> int:
        """The version a traffic key, label or version number names."""
        if isinstance(target, int):
            return target
        number = parse_version(target)
        return number if number is not None else self.labels[target]

    def referenced_versions(self) -> dict[str, int]:
        """Every version the config names, by the field that names it (for checks)."""
        named: dict[str, int] = {f"labels.{k}": v for k, v in self.labels.items()}
        named.update({f"traffic.{k}": self.version_of(k) for k in self.traffic})
        if self.shadow is not None:
            named["shadow"] = self.version_of(self.shadow)
        return named


def _is_version_text(text: str) -> bool:
    return parse_version(text) is not None


_MISMATCH = ("missing", "extra_forbidden")


class ConfigError(ValueError):
    """config.json cannot be used; the message names the field and is safe to show."""


def parse_config(data: bytes) -> ModelConfig:
    """A config.json's bytes -> ModelConfig (raises ConfigError naming the field)."""
    try:
        return ModelConfig.model_validate_json(data)
    except ValidationError as exc:
        errors = exc.errors()
        # A union (version_policy) reports every member's mismatch ("latest: Field required"
        # for a "specific" policy): the member that matched the keys says what is wrong.
        first = next((e for e in errors if e["type"] not in _MISMATCH), errors[0])
        # Union members appear in the location as their class names (_Latest): not fields.
        where = ".".join(str(p) for p in first["loc"] if not str(p).startswith("_")) or "config"
        message = first["msg"].removeprefix("Value error, ")
        more = f" ({exc.error_count()} problems)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{CONFIG_FILENAME} is invalid: {where}: {message}{more}") from None
    except json.JSONDecodeError as exc:  # pragma: no cover - pydantic wraps JSON errors
        raise ConfigError(f"{CONFIG_FILENAME} is not JSON: {exc.msg}") from None


def check_selection(policy: VersionPolicy, candidates: list[int]) -> list[int]:
    """The versions `policy` serves out of the version folders `candidates`. Raises
    ConfigError (naming version_policy) when it serves none of them: such a policy would
    retire every version of the model, so it is refused like any other invalid config."""
    served = policy.select(candidates)
    if candidates and not served:
        folders = ", ".join(str(v) for v in sorted(candidates))
        raise ConfigError(
            f"{CONFIG_FILENAME} is invalid: version_policy: it serves {policy.describe()}, "
            f"but the version folders are {folders}; name one of them or remove "
            "version_policy"
        )
    return served


def check_against_policy(config: ModelConfig, served: list[int]) -> None:
    """Raise ConfigError when the config names a version the policy does not serve."""
    for where, version in config.referenced_versions().items():
        if version not in served:
            serving = ", ".join(str(v) for v in served) or "none"
            raise ConfigError(
                f"{CONFIG_FILENAME} is invalid: {where}: version {version} is not served under "
                f"the version policy (served: {serving}); add its folder or widen "
                "version_policy"
            )
