"""ONNX Runtime as the engine of scikit-learn estimators (app.runtimes.onnx_engine): a family
of estimators the server is given (pipelines with "passthrough", calibrated and ensemble
classifiers, trees, linear and multi-output regressors) compiles and computes what
scikit-learn computes on rows it was not checked on; what does not convert, computes
something else or is slower is refused with a reason, and scikit-learn keeps serving.

Equivalence is tested with the speed rule off (`require_faster=False`): which engine is
faster for a small linear model depends on the host; the rule has its own test, with a
reference that takes no time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from app.runtimes.onnx_engine import ATOL, RTOL, OnnxEngine, compile_estimator
from tests.estimators import iris, wrapped_knns


def _rows(count: int, seed: int, features: int = 4) -> np.ndarray:
    """float32 rows as the tabular kind makes them: within the data's span and far beyond."""
    rng = np.random.default_rng(seed)
    scale = np.repeat([1.0, 3.0, 20.0], [count // 2, count // 4, count - count // 2 - count // 4])
    rows: np.ndarray = 4.0 + rng.uniform(-2, 2, (count, features)) * scale[:, None]
    return rows.astype(np.float32)


def _iris_knn_as_trained() -> Any:
    """The committed iris-knn's shape: a calibrated k-NN whose scaling step is "passthrough"."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline

    x, y = iris()
    pipeline = Pipeline([("scale", "passthrough"), ("knn", KNeighborsClassifier(11))])
    return CalibratedClassifierCV(pipeline, cv=5, ensemble=False).fit(x, y)


def _classifiers() -> dict[str, Any]:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = iris()
    binary = (x[:, 2] > 3).astype(int)
    return {
        **wrapped_knns(),
        "calibrated, passthrough": _iris_knn_as_trained(),
        "scaled logistic regression": make_pipeline(
            StandardScaler(), LogisticRegression(max_iter=500)
        ).fit(x, y),
        "binary logistic regression": LogisticRegression().fit(x, binary),
        "random forest": RandomForestClassifier(10, max_depth=4, random_state=0).fit(x, y),
    }


def _regressors() -> dict[str, Any]:
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.linear_model import LinearRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, _ = iris()
    return {
        "ridge": make_pipeline(StandardScaler(), Ridge()).fit(x[:, :3], x[:, 3]),
        "two targets": LinearRegression().fit(x[:, :2], x[:, 2:]),
        "gradient boosting": GradientBoostingRegressor(n_estimators=20, random_state=0).fit(
            x[:, :3], x[:, 3]
        ),
    }


def _reference(estimator: Any, classifier: bool) -> Callable[[np.ndarray], np.ndarray]:
    def outputs(batch: np.ndarray) -> np.ndarray:
        values = estimator.predict_proba(batch) if classifier else estimator.predict(batch)
        return np.asarray(values, dtype=np.float64).reshape(len(batch), -1)

    return outputs


def _features(estimator: Any) -> int:
    return int(estimator.n_features_in_)


@pytest.mark.parametrize(("name", "classifier"), [(n, True) for n in _classifiers()])
def test_each_classifier_compiles_and_gives_scikit_learns_probabilities_on_new_rows(
    name: str, classifier: bool
) -> None:
    estimator = _classifiers()[name]
    reference = _reference(estimator, classifier)
    engine = compile_estimator(
        estimator, _rows(256, 1), reference, classifier=True, require_faster=False
    )
    assert isinstance(engine, OnnxEngine), engine
    unseen = _rows(500, 2)
    expected, got = reference(unseen), engine.run(unseen)  # the graph alone, on every row
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)
    assert np.array_equal(got.argmax(axis=1), expected.argmax(axis=1))
    assert engine.run(unseen[:1]).shape == (1, expected.shape[1])  # a lone row, as at c=1


@pytest.mark.parametrize("name", list(_regressors()))
def test_each_regressor_compiles_and_gives_scikit_learns_values_on_new_rows(name: str) -> None:
    estimator = _regressors()[name]
    reference = _reference(estimator, classifier=False)
    features = _features(estimator)
    engine = compile_estimator(
        estimator, _rows(256, 1, features), reference, classifier=False, require_faster=False
    )
    assert isinstance(engine, OnnxEngine), engine
    unseen = _rows(500, 2, features)
    np.testing.assert_allclose(engine.run(unseen), reference(unseen), rtol=RTOL, atol=ATOL)


def test_rows_outside_the_checked_box_are_computed_by_scikit_learn() -> None:
    estimator = _iris_knn_as_trained()
    sklearn_outputs = _reference(estimator, True)
    given: list[np.ndarray] = []

    def reference(batch: np.ndarray) -> np.ndarray:
        given.append(batch.copy())
        return sklearn_outputs(batch)

    check = _rows(256, 1)
    engine = compile_estimator(estimator, check, reference, classifier=True, require_faster=False)
    assert isinstance(engine, OnnxEngine), engine
    # Beyond about 1e10 a graph's expanded squared distances lose every digit.
    far = np.array([[1e20, 3.0, 5.0, 1.0], [5.0, 3.0, -1e15, 1.0]], dtype=np.float32)
    mixed = np.concatenate([check[:3], far[:1], check[3:5], far[1:]])
    given.clear()
    got = engine(mixed)
    assert len(given) == 1 and np.array_equal(given[0], far)  # only those, by scikit-learn
    expected = sklearn_outputs(mixed)
    np.testing.assert_array_equal(got[[3, 6]], expected[[3, 6]])
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)  # each row in its place
    given.clear()
    engine(check[:10])
    assert given == []  # inside the box: the graph alone


def test_whatever_fails_while_compiling_is_a_reason_not_an_exception() -> None:
    class Unconvertible:  # e.g. a copy that runs out of memory
        def __deepcopy__(self, memo: Any) -> Any:
            raise MemoryError("no room for a copy")

    reason = compile_estimator(
        Unconvertible(), _rows(8, 1), lambda batch: np.zeros((len(batch), 3)), classifier=True
    )
    assert reason == "the conversion failed (MemoryError: no room for a copy)"


def test_compiling_leaves_the_served_estimator_as_it_was() -> None:
    estimator = _iris_knn_as_trained()
    compile_estimator(estimator, _rows(64, 1), _reference(estimator, True), classifier=True)
    # Explanations look inside the estimator: its "passthrough" step is still there.
    assert estimator.calibrated_classifiers_[0].estimator.steps[0] == ("scale", "passthrough")


def test_an_estimator_without_a_converter_is_refused_with_the_reason() -> None:
    from sklearn.base import BaseEstimator, ClassifierMixin

    class Nearest(ClassifierMixin, BaseEstimator):  # a user's own class: no skl2onnx converter
        def fit(self, x: np.ndarray, y: np.ndarray) -> Nearest:
            self.classes_ = np.unique(y)
            self.n_features_in_ = x.shape[1]
            return self

        def predict_proba(self, x: np.ndarray) -> np.ndarray:
            return np.full((len(x), len(self.classes_)), 1.0 / len(self.classes_))

    x, y = iris()
    estimator = Nearest().fit(x, y)
    reason = compile_estimator(
        estimator, _rows(32, 1), _reference(estimator, True), classifier=True
    )
    assert isinstance(reason, str) and reason.startswith("skl2onnx could not convert it")


def test_a_graph_that_computes_something_else_is_refused() -> None:
    estimator = wrapped_knns()["pipeline"]
    reference = _reference(estimator, True)

    def shifted(batch: np.ndarray) -> np.ndarray:  # as if the converter had got it wrong
        return reference(batch) + np.where(np.arange(len(batch))[:, None] == 7, 0.01, 0.0)

    reason = compile_estimator(estimator, _rows(32, 1), shifted, classifier=True)
    assert isinstance(reason, str) and "differ from scikit-learn's by up to 0.01" in reason


def test_a_different_most_probable_class_is_refused_even_within_the_tolerance() -> None:
    estimator = wrapped_knns()["bare"]
    reference = _reference(estimator, True)
    rows = _rows(64, 1)
    ordered = np.sort(reference(rows), axis=1)
    tied = int(np.flatnonzero(ordered[:, -1] == ordered[:, -2])[0])  # e.g. 0.4 / 0.2 / 0.4

    def tie_broken_otherwise(batch: np.ndarray) -> np.ndarray:
        out = reference(batch)
        second = int(np.flatnonzero(out[tied] == out[tied].max())[-1])
        out[tied, second] += ATOL / 2  # within the tolerance, but now the other class leads
        return out

    reason = compile_estimator(estimator, rows, tie_broken_otherwise, classifier=True)
    assert reason == "ONNX Runtime's most probable class differs from scikit-learn's on some rows"


def test_a_graph_slower_than_scikit_learn_is_not_served() -> None:
    estimator = wrapped_knns()["bare"]
    rows = _rows(64, 1)
    answers = _reference(estimator, True)(rows)

    def instant(batch: np.ndarray) -> np.ndarray:  # scikit-learn as if it took no time
        return answers[: len(batch)]

    reason = compile_estimator(estimator, rows, instant, classifier=True)
    assert isinstance(reason, str)
    assert reason.startswith("ONNX Runtime is not 2x as fast as scikit-learn on a batch of 1 ")


@pytest.mark.parametrize(
    "batch",
    [np.zeros((0, 4), np.float32), np.array([["a", "b", "c", "d"]], dtype=object)],
    ids=["no rows", "not numbers"],
)
def test_no_numeric_rows_to_check_on_means_no_engine(batch: np.ndarray) -> None:
    estimator = wrapped_knns()["bare"]
    reason = compile_estimator(estimator, batch, _reference(estimator, True), classifier=True)
    assert reason == "no numeric rows to verify a conversion on"


def test_scikit_learn_failing_on_the_check_rows_means_no_engine() -> None:
    estimator = wrapped_knns()["bare"]
    reason = compile_estimator(
        estimator, _rows(8, 1, features=3), _reference(estimator, True), classifier=True
    )
    assert reason == "scikit-learn failed on the verification rows (ValueError)"


def test_a_failing_check_never_fails_the_version_it_would_speed_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from types import SimpleNamespace

    from app.repository import loading

    asked: list[Any] = []
    monkeypatch.setattr(loading, "example_rows", lambda adapter: [])

    class Adapter:
        card = SimpleNamespace(name="toy", version=1)

        def check_rows(self, examples: list[Any], count: int, seed: int) -> list[Any]:
            raise ValueError("a row of the wrong length")

        def featurize(self, rows: list[Any]) -> Any:
            raise AssertionError("not reached")

    model = SimpleNamespace(accelerate=asked.append)
    loading.accelerate(model, Adapter())  # type: ignore[arg-type]
    assert asked == []
