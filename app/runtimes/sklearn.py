"""scikit-learn runtime: a fitted estimator (or Pipeline), saved with skops or joblib."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import sklearn

from app.runtimes.base import Model, Runtime, UntrustedArtifact
from app.runtimes.onnx_engine import OnnxEngine, compile_estimator
from app.runtimes.trust import TRUSTED_SKLEARN_TYPES
from app.schemas.card import ModelCard

log = logging.getLogger(__name__)

SKOPS_SUFFIX = ".skops"
# A numeric model fitted on a DataFrame is served float32 rows in the card's feature order
# (checked at import); scikit-learn would warn about the missing column names on every batch.
warnings.filterwarnings("ignore", message="X does not have valid feature names")


def load_skops(data: bytes) -> Any:
    """Rebuild an estimator from skops bytes, trusting skops' defaults and the server's
    audited list only; raises UntrustedArtifact naming any other type the file holds (none
    of it is rebuilt)."""
    import skops.io as sio

    untrusted = sorted(set(sio.get_untrusted_types(data=data)) - set(TRUSTED_SKLEARN_TYPES))
    if untrusted:
        raise UntrustedArtifact(
            "the skops file holds types outside the server's trust list: " + ", ".join(untrusted)
        )
    return sio.loads(data, trusted=list(TRUSTED_SKLEARN_TYPES))


class SklearnModel(Model):
    """Calls `predict_proba` (classifiers) or `predict` (regressors) on the whole batch, or
    its ONNX Runtime equivalent once `accelerate` verified one.

    A `.skops` file is rebuilt with the server's trust list (`app.runtimes.trust`); a
    joblib file (the built-in models') is a pickle, i.e. code: the registry only gets here
    after the file's sha256 matched the card, and only the project's trainers write them.
    """

    _estimator: Any = None
    _engine: OnnxEngine | None = None  # set by accelerate()

    def load(self) -> None:
        path = self.folder / self.card.model_file
        if path.name.endswith(SKOPS_SUFFIX):
            estimator = load_skops(path.read_bytes())
        else:
            import joblib

            estimator = joblib.load(path)
        if self.task.probabilities:
            if not hasattr(estimator, "predict_proba"):
                raise TypeError(f"{self.card.model_file} has no predict_proba: not a classifier")
            classes = getattr(estimator, "classes_", None)
            if classes is not None and len(classes) != len(self.card.labels):
                raise ValueError(
                    f"the estimator knows {len(classes)} classes but the card lists "
                    f"{len(self.card.labels)} labels"
                )
        self._estimator = estimator

    @property
    def estimator(self) -> Any:
        """The fitted estimator as loaded (explanations look inside it); None before load()."""
        return self._estimator

    @property
    def engine(self) -> str | None:
        return self._engine.description if self._engine is not None else None

    def accelerate(self, check_batch: Any) -> None:
        """ONNX Runtime instead of scikit-learn when the estimator converts and the graph
        reproduces scikit-learn on `check_batch` (`app.runtimes.onnx_engine`); a model whose
        rows are not one numeric array (a table of mixed columns) keeps scikit-learn."""
        if not isinstance(check_batch, np.ndarray):
            return
        compiled = compile_estimator(
            self._estimator,
            check_batch,
            self._predict_with_sklearn,
            classifier=self.task.probabilities,
        )
        name = f"{self.card.name}/{self.card.version}"
        if isinstance(compiled, str):
            log.info("model %s: served by scikit-learn, not ONNX Runtime: %s", name, compiled)
            return
        self._engine = compiled

    def predict(self, batch: Any) -> np.ndarray:
        if self._engine is not None:
            return self._engine(batch)
        return self._predict_with_sklearn(batch)

    def _predict_with_sklearn(self, batch: Any) -> np.ndarray:
        # The batch comes from an adapter, which refused every value the card does not allow,
        # and the estimator's parameters were validated when it was fitted: skipping both
        # checks saves about a tenth of a small batch's CPU (the calibrated k-NN).
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            if self.task.probabilities:
                return np.asarray(self._estimator.predict_proba(batch), dtype=np.float64)
            values = np.asarray(self._estimator.predict(batch), dtype=np.float64)
        return values.reshape(len(values), -1)  # (N,) single target -> (N, 1)


class SklearnRuntime(Runtime):
    """scikit-learn estimators (card framework "sklearn"): nothing to set up or compile."""

    framework = "sklearn"
    library = "scikit-learn"

    def read_artifact(self, data: bytes) -> Any:
        return load_skops(data)

    def create(
        self, card: ModelCard, folder: Path, *, max_batch_size: int, buckets: Sequence[int] | None
    ) -> Model:
        return SklearnModel(card, folder)

    def owns(self, model: Model) -> bool:
        return isinstance(model, SklearnModel)
