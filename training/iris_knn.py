"""iris-knn: scikit-learn k-nearest neighbours on the Iris flowers, k chosen by cross-validation."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import GridSearchCV, RepeatedStratifiedKFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from app.schemas.card import Calibration, Feature, TabularInput, TrainingData
from training.calibration import ECE_BINS, reliability
from training.common import (
    Progress,
    TrainOptions,
    TrainResult,
    evaluate,
    misclassified_examples,
    predicted_examples,
    write_errors_artifact,
)
from training.splits import iris_split

NAME = "iris-knn"
FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
LABELS = ["setosa", "versicolor", "virginica"]
MODEL_FILE = "model.joblib"
CV_REPEATS = 10


def client_instances(x: np.ndarray) -> list[dict[str, float]]:
    """Rows (N, 4) in cm as a client sends them: named features, 2 decimals."""
    return [dict(zip(FEATURES, row.round(2).tolist(), strict=True)) for row in x]


def train(work: Path, options: TrainOptions) -> TrainResult:
    """Fit KNN; k, weighting and whether to standardise are picked by repeated CV on train.

    All four features are lengths in cm, so unscaled distances are meaningful and usually win
    (petal sizes, the telling features, also vary most); CV decides, not the test split.
    """
    progress = Progress(NAME, options.quiet)
    split = iris_split(options.data_dir, options.max_rows)
    x_train, x_test, y_train, y_test = split.x_train, split.x_test, split.y_train, split.y_test
    folds = min(5, int(np.bincount(y_train).min()))
    search = GridSearchCV(
        Pipeline([("scale", StandardScaler()), ("knn", KNeighborsClassifier())]),
        {
            "scale": [StandardScaler(), "passthrough"],
            "knn__n_neighbors": list(range(1, min(31, len(x_train) * (folds - 1) // folds), 2)),
            "knn__weights": ["uniform", "distance"],
        },
        cv=RepeatedStratifiedKFold(n_splits=folds, n_repeats=CV_REPEATS, random_state=options.seed),
        scoring="accuracy",
    )
    progress(f"cross-validating on {len(x_train)} flowers ({CV_REPEATS}x{folds} folds)")
    search.fit(x_train, y_train)
    best = search.best_params_
    scaling = "none" if best["scale"] == "passthrough" else "StandardScaler"
    progress(
        f"best k={best['knn__n_neighbors']} weights={best['knn__weights']} "
        f"scaling={scaling} (cv accuracy {search.best_score_:.3f})"
    )
    uncalibrated = search.best_estimator_
    # KNN votes come in steps of 1/k and are overconfident near the class borders. Sigmoid
    # (Platt) calibration per class, fitted on cross-validated predictions of the train split
    # (there is no separate validation split: 120 flowers), the final KNN fitted on all of it.
    model = CalibratedClassifierCV(uncalibrated, method="sigmoid", cv=folds, ensemble=False)
    model.fit(x_train, y_train)
    joblib.dump(model, work / MODEL_FILE)
    ece_before, _ = reliability(y_test, uncalibrated.predict_proba(x_test))
    ece_after, table = reliability(y_test, model.predict_proba(x_test))
    calibration = Calibration(
        method="sigmoid calibration per class (scikit-learn CalibratedClassifierCV, "
        "ensemble=False)",
        fitted_on=f"{folds}-fold cross-validated predictions on the train split",
        evaluated_on="test",
        bins=ECE_BINS,
        ece_before=ece_before,
        ece_after=ece_after,
        accuracy_before=round(float((uncalibrated.predict(x_test) == y_test).mean()), 6),
        reliability=table,
    )

    metrics = evaluate(y_test, model.predict_proba(x_test), LABELS, "test")
    write_errors_artifact(
        work,
        misclassified_examples(
            client_instances(x_test), y_test, model.predict_proba(x_test), LABELS, "test"
        ),
    )
    firsts = [int(np.flatnonzero(y_test == c)[0]) for c in range(len(LABELS))]
    examples = predicted_examples(
        [dict(zip(FEATURES, x_test[i].round(2).tolist(), strict=True)) for i in firsts],
        [LABELS[y_test[i]] for i in firsts],
        lambda flowers: model.predict_proba([[f[name] for name in FEATURES] for f in flowers]),
    )
    return TrainResult(
        description="Iris species from four flower measurements (cm): k-nearest neighbours "
        "(scikit-learn).",
        framework="sklearn",
        task="multiclass-classification",
        input=TabularInput(
            features=[Feature(name=n, unit="cm", description=n.replace("_", " ")) for n in FEATURES]
        ),
        labels=LABELS,
        model_file=MODEL_FILE,
        training_data=TrainingData(
            source="Iris (Fisher 1936) as bundled with scikit-learn, 80/20 stratified split "
            "(random_state=42)",
            sha256=split.source.sha256,
            train_size=len(x_train),
            validation_size=0,
            test_size=len(x_test),
            notes=f"k, weights and scaling chosen by {CV_REPEATS}x{folds}-fold cross-validation "
            "on the train split",
        ),
        hyperparameters={
            "n_neighbors": int(best["knn__n_neighbors"]),
            "weights": best["knn__weights"],
            "scaling": scaling,
            "cv": f"{CV_REPEATS}x repeated stratified {folds}-fold",
            "cv_accuracy": round(float(search.best_score_), 4),
        },
        metrics=metrics,
        examples=examples,
        calibration=calibration,
        libraries=("numpy", "scikit-learn", "joblib"),
        intended_use="Demonstration of classic ML serving; classifies iris flowers by species.",
        limitations="Trained on 120 flowers of three species; measurements far outside the "
        "data (or other species) still get one of the three labels.",
    )
