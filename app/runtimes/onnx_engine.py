"""ONNX Runtime as the engine of a fitted scikit-learn estimator that takes numbers.

scikit-learn checks its inputs on every call (`check_array`, type-of-target, label encoding,
dataframe detection), several times over in a pipeline or a calibrated classifier: for the
small batches a server computes, that costs more than the arithmetic (the calibrated k-NN of
iris-knn: about 1.6-3 ms per call of 1 to 64 rows, where ONNX Runtime computes the same
probabilities in 0.3-0.6 ms; bench/RESULTS.md, session 9). So a scikit-learn model can be
served through ONNX Runtime instead, on three conditions checked once, at load:

1. skl2onnx (the converter for scikit-learn of the ONNX project) converts the estimator, in
   double precision (float64, as scikit-learn computes) or else in single precision (tree
   ensembles, whose ONNX operators take float32, as scikit-learn's trees compare), and ONNX
   Runtime opens the graph;
2. on rows the model's input kind generates (its training ranges, beyond them, and the card's
   examples), the graph's outputs equal scikit-learn's to within `RTOL`/`ATOL`, and a
   classifier's most probable class is the same on every row;
3. the graph is at least `MIN_SPEEDUP` times as fast as scikit-learn on one row and on 64
   (`TIMED_BATCH_SIZES`).

Anything else (a converter that does not exist, such as for a custom transformer; a
difference; an error) keeps scikit-learn, and the reason is logged. Nothing is written to the
model's folder: the card's hashed artifact stays what is served, and the graph is rebuilt
from it at every load.

The graph only computes rows inside the box the check rows spanned (per feature, their least
and greatest value); scikit-learn computes the others. Far outside it the two part ways: the
graph's k-NN expands squared distances (|x|^2 - 2 x.y + |y|^2), which loses every digit
beyond about 1e10, where scikit-learn's tree search does not.

What the check cannot promise: where scikit-learn's own answer hinges on a tie or on the last
bit, the graph may take the other side. A k-NN whose k-th and (k+1)-th nearest training rows
are at the same distance keeps either (scikit-learn documents that its answer then depends on
the order of the training data); a row within float32 rounding of a tree's split, behind a
scaler, may fall on the other side. Measured on iris-knn (`bench/onnx_engine.py`): 101 of the
1.79 million rows of a 0.1 cm grid over its training range get other probabilities, 4 of them
another label; none of a million uniform rows over the same range does.

Sources: sklearn-onnx (https://onnx.ai/sklearn-onnx/, the ONNX project); ONNX Runtime
(https://onnxruntime.ai/, Microsoft).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

# What the graph's outputs may differ from scikit-learn's by. A float64 graph and scikit-learn
# in float64 differ by the order of the sums (about 1e-16); scikit-learn computes some
# estimators in float32 given float32 rows (a linear model's decision function), and a tree
# ensemble's graph is float32: about 1e-7 relative. A wrong conversion differs by far more.
RTOL = 1e-5
ATOL = 1e-6
# The graph serves only if it is also faster, on a lone row and on a full batch: it computes
# a k-NN by brute force, where scikit-learn searches a tree, so for a large training set
# scikit-learn can be the faster. The fastest of a few runs each: a few milliseconds at load.
TIMED_BATCH_SIZES = (1, 64)
TIMED_RUNS = 5
# A clear margin, so that timing noise at load does not decide: two loads of one model (a
# version and its shadow, two replicas) must pick the same engine, or their answers differ in
# the last bits. iris-knn's graph: 3-5x; a linear model's: about 1-1.7x, so scikit-learn.
MIN_SPEEDUP = 2.0
# ONNX operator sets the graph is written for: supported by every ONNX Runtime >= 1.14.
TARGET_OPSET = {"": 18, "ai.onnx.ml": 3}


@dataclass(frozen=True)
class OnnxEngine:
    """A verified ONNX Runtime session: `engine(batch)` -> `(N, C)` float64 outputs (class
    probabilities in the estimator's class order, or a regressor's values), as scikit-learn's
    `predict_proba`/`predict` would give for the `(N, F)` numeric batch. Rows outside the
    verified box (`low`..`high` per feature) are computed by `fallback` (scikit-learn).
    Thread-safe (ONNX Runtime sessions are); releases the GIL while it computes."""

    session: Any
    input_name: str
    input_dtype: Any  # np.float64, or np.float32 for a graph converted in single precision
    output_name: str
    low: np.ndarray  # (F,)
    high: np.ndarray  # (F,)
    fallback: Callable[[np.ndarray], np.ndarray]
    description: str = ""

    def __call__(self, batch: Any) -> np.ndarray:
        values = np.asarray(batch)
        inside = ((values >= self.low) & (values <= self.high)).all(axis=1)
        if inside.all():
            return self.run(values)
        outside = self.fallback(values[~inside])
        if not inside.any():
            return outside
        computed = self.run(values[inside])
        result = np.empty((len(values), computed.shape[1]), dtype=np.float64)
        result[inside], result[~inside] = computed, outside
        return result

    def run(self, batch: Any) -> np.ndarray:
        """The graph's outputs for `batch`, wherever its rows lie."""
        values = np.ascontiguousarray(batch, dtype=self.input_dtype)
        (outputs,) = self.session.run([self.output_name], {self.input_name: values})
        result = np.asarray(outputs, dtype=np.float64)
        return result.reshape(len(values), -1)


def compile_estimator(
    estimator: Any,
    check_batch: np.ndarray,
    reference: Callable[[np.ndarray], np.ndarray],
    *,
    classifier: bool,
    require_faster: bool = True,
) -> OnnxEngine | str:
    """An `OnnxEngine` for `estimator`, or why not (a sentence, safe to log).

    `check_batch`: `(N, F)` numeric rows to verify on, as the server's input kind makes them
    (float32); `reference(batch)`: scikit-learn's `(N, C)` float64 outputs for them (what the
    server would otherwise serve). `classifier`: the outputs are class probabilities (the
    graph's probability output is served, and the most probable class must agree on every
    row). `require_faster`: refuse a graph not `MIN_SPEEDUP` times as fast as scikit-learn
    (condition 3 above). Never raises: whatever fails is the reason.
    """
    try:
        return _compile(estimator, check_batch, reference, classifier, require_faster)
    except Exception as exc:  # noqa: BLE001 - whatever fails here, scikit-learn still serves
        return f"the conversion failed ({type(exc).__name__}: {_first_line(exc)})"


def _compile(
    estimator: Any,
    check_batch: np.ndarray,
    reference: Callable[[np.ndarray], np.ndarray],
    classifier: bool,
    require_faster: bool,
) -> OnnxEngine | str:
    check = np.asarray(check_batch)
    if check.ndim != 2 or not len(check) or check.dtype.kind != "f":
        return "no numeric rows to verify a conversion on"
    if not np.isfinite(check).all():
        return "the verification rows are not all finite"
    try:
        expected = np.asarray(reference(check), dtype=np.float64).reshape(len(check), -1)
    except Exception as exc:  # noqa: BLE001 - the model's own problem, not the engine's
        return f"scikit-learn failed on the verification rows ({type(exc).__name__})"
    stripped = _without_passthrough(estimator)
    session = None
    problem: Exception | None = None
    for precision in ("double", "float"):
        try:
            session = _session(stripped, check.shape[1], precision)
            break
        except Exception as exc:  # noqa: BLE001 - float32-only operators (trees), or no converter
            problem = exc
    if session is None:
        assert problem is not None
        return f"skl2onnx could not convert it ({type(problem).__name__}: {_first_line(problem)})"
    graph_input = session.get_inputs()[0]
    input_dtype = np.float64 if graph_input.type == "tensor(double)" else np.float32
    output_name = _served_output(session, classifier)
    if output_name is None:
        return "the converted graph has no tensor output of the expected shape"
    engine = OnnxEngine(
        session,
        graph_input.name,
        input_dtype,
        output_name,
        low=check.min(axis=0),
        high=check.max(axis=0),
        fallback=reference,
    )
    try:
        got = engine.run(check)
    except Exception as exc:  # noqa: BLE001 - e.g. a shape the graph does not take
        return f"ONNX Runtime failed on the verification rows ({type(exc).__name__})"
    if got.shape != expected.shape:
        return f"ONNX Runtime gave outputs of shape {got.shape}, scikit-learn {expected.shape}"
    if not np.allclose(got, expected, rtol=RTOL, atol=ATOL, equal_nan=True):
        worst = float(np.nanmax(np.abs(got - expected)))
        return f"ONNX Runtime's outputs differ from scikit-learn's by up to {worst:.3g}"
    if classifier and not np.array_equal(got.argmax(axis=1), expected.argmax(axis=1)):
        return "ONNX Runtime's most probable class differs from scikit-learn's on some rows"
    for size in TIMED_BATCH_SIZES if require_faster else ():
        batch = check[:size]
        graph_s, sklearn_s = _best_time(engine.run, batch), _best_time(reference, batch)
        if graph_s * MIN_SPEEDUP > sklearn_s:
            return (
                f"ONNX Runtime is not {MIN_SPEEDUP:g}x as fast as scikit-learn on a batch of "
                f"{len(batch)} ({graph_s * 1e6:.0f} against {sklearn_s * 1e6:.0f} us)"
            )
    import onnxruntime

    description = (
        f"ONNX Runtime {onnxruntime.__version__} (verified against scikit-learn on "
        f"{len(check)} rows)"
    )
    return dataclasses.replace(engine, description=description)


def _best_time(compute: Callable[[np.ndarray], Any], batch: np.ndarray) -> float:
    """The fastest of `TIMED_RUNS` calls, in seconds (the least disturbed by other work)."""
    best = math.inf
    for _ in range(TIMED_RUNS):
        started = time.perf_counter()
        compute(batch)
        best = min(best, time.perf_counter() - started)
    return best


def _session(estimator: Any, n_features: int, precision: str) -> Any:
    """An ONNX Runtime session of `estimator` converted for `precision` ("double": float64,
    as scikit-learn computes; "float": float32, as its trees compare), inputs cast to it."""
    import onnxruntime
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    tensor_type = DoubleTensorType if precision == "double" else FloatTensorType
    graph = convert_sklearn(
        estimator,
        initial_types=[("input", tensor_type([None, n_features]))],
        # Probabilities as one (N, C) tensor, not a list of {class: probability} maps.
        options={id(estimator): {"zipmap": False}} if hasattr(estimator, "classes_") else None,
        target_opset=TARGET_OPSET,
    )
    options = onnxruntime.SessionOptions()
    # Parallelism comes from concurrent requests, and a batch is small: one thread per call,
    # and no thread spinning after a call (a spinning thread takes a core from the event loop).
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: the server's log is not ONNX Runtime's
    return onnxruntime.InferenceSession(
        graph.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def _served_output(session: Any, classifier: bool) -> str | None:
    """The output that holds what scikit-learn returns: a classifier's probabilities (the
    last floating-point tensor; the first is the label), a regressor's values (the first)."""
    tensors: list[str] = [
        str(output.name)
        for output in session.get_outputs()
        if output.type in ("tensor(double)", "tensor(float)")
    ]
    if not tensors:
        return None
    return tensors[-1] if classifier else tensors[0]


def _without_passthrough(estimator: Any) -> Any:
    """A copy of `estimator` with the "passthrough" (and None) steps of every Pipeline in it
    removed, as skl2onnx refuses them; they compute nothing, so the copy predicts the same."""
    from sklearn.pipeline import Pipeline

    def strip(value: Any) -> Any:
        if isinstance(value, Pipeline):
            steps = [(name, strip(step)) for name, step in value.steps if _computes(step)]
            value.steps = steps
            return value
        if isinstance(value, list):
            return [strip(item) for item in value]
        if isinstance(value, tuple):
            return tuple(strip(item) for item in value)
        if type(value).__module__.startswith("sklearn.") and hasattr(value, "__dict__"):
            for name, attribute in vars(value).items():
                setattr(value, name, strip(attribute))
        return value

    return strip(copy.deepcopy(estimator))


def _computes(step: Any) -> bool:
    return step is not None and not (isinstance(step, str) and step == "passthrough")


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text[:200]
