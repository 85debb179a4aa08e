"""The model repository: what versions exist (`registry`) and how one comes to serve
(`lifecycle`: discover, verify, load, warm up, replay the card's examples, state)."""

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
