"""The model card: one schema, written by `training/` and validated by `app/`.

A card travels with every artifact folder (`models/<name>/<version>/card.json`). It says what
the model is, what it expects as input, how it was trained and how well it did on held-out
data, and pins the sha256 of every file in the folder so the server refuses tampered or
truncated artifacts.

The sections live in their own modules (common, inputs, evaluation, model); every name is
imported from here.
"""

from app.schemas.card.common import (
    ARTIFACT_NAME_PATTERN,
    CARD_FILENAME,
    MODEL_NAME_PATTERN,
    SCHEMA_VERSION,
    SHA256_PATTERN,
    ArtifactName,
    Sha256,
)
from app.schemas.card.evaluation import (
    Calibration,
    HeldOutMetrics,
    OutOfDomainChecks,
    RegressionMetrics,
    ReliabilityBin,
    TrainingData,
)
from app.schemas.card.inputs import (
    Feature,
    FeatureType,
    ImageInput,
    InputSpec,
    RawImageInput,
    RawTextInput,
    TableInput,
    TabularInput,
    TextInput,
)
from app.schemas.card.model import (
    CardExample,
    ImportRecord,
    ModelCard,
    ScanFinding,
    sha256_file,
    verify_artifacts,
)

__all__ = [
    "ARTIFACT_NAME_PATTERN",
    "CARD_FILENAME",
    "MODEL_NAME_PATTERN",
    "SCHEMA_VERSION",
    "SHA256_PATTERN",
    "ArtifactName",
    "Calibration",
    "CardExample",
    "Feature",
    "FeatureType",
    "HeldOutMetrics",
    "ImageInput",
    "ImportRecord",
    "InputSpec",
    "ModelCard",
    "OutOfDomainChecks",
    "RawImageInput",
    "RawTextInput",
    "RegressionMetrics",
    "ReliabilityBin",
    "ScanFinding",
    "Sha256",
    "TableInput",
    "TabularInput",
    "TextInput",
    "TrainingData",
    "sha256_file",
    "verify_artifacts",
]
