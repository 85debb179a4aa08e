"""The model repository: which versions exist and in what state (`registry`, `versions`),
each model's serving config (`config`), how the models dir is read (`files`, `scan`), how a
request picks its version (`routing`), and how one comes to serve and stops (`lifecycle`,
`changes`, `loading`: scan, verify, load, warm up, replay the card's examples, retire)."""

from app.repository.config import ConfigError, ModelConfig, VersionPolicy
from app.repository.files import RepositoryFileError, read_repository_file
from app.repository.loading import ArtifactMismatch, load_failure_reason, verify
from app.repository.registry import ModelRegistry, ServedModel
from app.repository.routing import Router
from app.repository.versions import (
    CardedVersion,
    Leases,
    ModelEntry,
    ModelState,
    ServedVersion,
)

__all__ = [
    "ArtifactMismatch",
    "CardedVersion",
    "ConfigError",
    "Leases",
    "ModelConfig",
    "ModelEntry",
    "ModelRegistry",
    "ModelState",
    "RepositoryFileError",
    "Router",
    "ServedModel",
    "ServedVersion",
    "VersionPolicy",
    "load_failure_reason",
    "read_repository_file",
    "verify",
]
