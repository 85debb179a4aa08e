"""Moved to `app.repository`; kept so older imports still work."""

from app.repository.registry import (
    ArtifactMismatch,
    ModelEntry,
    ModelRegistry,
    ModelState,
    RepositoryFileError,
    VersionPolicy,
    discover,
    load_failure_reason,
    read_repository_file,
    verify,
)

__all__ = [
    "ArtifactMismatch",
    "ModelEntry",
    "ModelRegistry",
    "ModelState",
    "RepositoryFileError",
    "VersionPolicy",
    "discover",
    "load_failure_reason",
    "read_repository_file",
    "verify",
]
