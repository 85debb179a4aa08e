"""What the server trusts inside a scikit-learn artifact, and which library versions it takes.

skops (`skops.io`) stores an estimator as a tree of typed objects and rebuilds only the types
it is told to trust: its own defaults (scikit-learn's estimators, NumPy arrays, builtins) and
the list below. The list lives here, in the server's code, reviewed with it; never in the
artifact, so a file cannot vouch for itself. Each entry says why it is safe.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as installed_version
from typing import Final

# Audited: each is a data container whose rebuilding runs no user code.
TRUSTED_SKLEARN_TYPES: Final[tuple[str, ...]] = (
    # The fitted tree of every tree ensemble (random forests, gradient boosting): arrays of
    # node thresholds and values, rebuilt by scikit-learn's own Cython __setstate__.
    "sklearn.tree._tree.Tree",
    # A NumPy dtype (ColumnTransformer and encoders record the dtypes they were fitted on).
    "numpy.dtype",
    # HistGradientBoosting's fitted predictors and bin mapper: arrays only.
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    # The loss objects gradient boosting keeps (constants, no callables).
    "sklearn._loss.loss.HalfSquaredError",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss.loss.HalfMultinomialLoss",
    "sklearn._loss.loss.AbsoluteError",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.MultinomialLogit",
    "sklearn._loss.link.Interval",
)


def major_minor(version: str) -> tuple[int, ...]:
    """ "1.9.1" -> (1, 9); a version that does not start with two numbers -> ()."""
    parts = version.split(".")[:2]
    return tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else ()


def library_version_problem(library: str | None, recorded: dict[str, str]) -> str | None:
    """Why an artifact saved with `recorded` library versions should not be loaded here, or
    None; `library` is the distribution its runtime depends on (`Runtime.library`; None: no
    check). scikit-learn does not support loading an estimator saved by another release (a
    changed attribute can crash or, worse, silently change predictions), nor does Keras
    promise it across minor releases: so a major.minor difference is refused."""
    if library is None or library not in recorded:
        return None
    try:
        here = installed_version(library)
    except PackageNotFoundError:
        return f"{library} is not installed on this server"
    saved = recorded[library]
    if major_minor(saved) == major_minor(here):
        return None
    return (
        f"the model was saved with {library} {saved} but this server runs {library} {here}; "
        f"a {library} model is only served by the same major.minor release. Re-import it "
        "under this server's version, or set SYNERGY_ALLOW_LIBRARY_VERSION_MISMATCH=true to "
        "serve it anyway (its load-time replay still has to agree)"
    )
