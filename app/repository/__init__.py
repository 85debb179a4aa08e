"""The model repository: what versions exist (`registry`), each model's serving config
(`config`) and how one comes to serve and stops (`lifecycle`: scan, verify, load, warm up,
replay the card's examples, retire)."""

from app.repository.config import ConfigError, ModelConfig, VersionPolicy
from app.repository.registry import (
    ArtifactMismatch,
    ModelEntry,
    ModelRegistry,
    ModelState,
    RepositoryFileError,
    Router,
    ServedModel,
    discover,
    load_failure_reason,
    read_repository_file,
    verify,
)

__all__ = [
    "ArtifactMismatch",
    "ConfigError",
    "ModelConfig",
    "ModelEntry",
    "ModelRegistry",
    "ModelState",
    "RepositoryFileError",
    "Router",
    "ServedModel",
    "VersionPolicy",
    "discover",
    "load_failure_reason",
    "read_repository_file",
    "verify",
]
