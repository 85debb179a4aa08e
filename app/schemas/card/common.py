"""What every section of the card shares: the file name, the schema version, the patterns
names and hashes follow, and the strict (frozen, no extra fields) base model."""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field

CARD_FILENAME = "card.json"
SCHEMA_VERSION: Final = 1

# Model names end up in URLs and folder names: keep them to a safe, boring alphabet.
MODEL_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"
# Artifact file names are plain names inside the version folder: no separators, no "..".
ARTIFACT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"

ArtifactName = Annotated[str, Field(pattern=ARTIFACT_NAME_PATTERN)]
Sha256 = Annotated[str, Field(pattern=SHA256_PATTERN)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
