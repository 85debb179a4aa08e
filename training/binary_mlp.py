"""binary-mlp: a Keras MLP (64-32-1) on 20 synthetic features from make_classification."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from app.schemas.card import Feature, TabularInput, TrainingData
from training.common import (
    Progress,
    TrainOptions,
    TrainResult,
    calibrate_keras,
    evaluate,
    misclassified_examples,
    predicted_examples,
    save_keras,
    set_seeds,
    write_errors_artifact,
)
from training.splits import BINARY_MLP_FEATURES, binary_mlp_split

NAME = "binary-mlp"
N_FEATURES = BINARY_MLP_FEATURES
LABELS = ["0", "1"]
MODEL_FILE = "model.keras"
DEFAULT_EPOCHS = 200


L2 = 1e-2  # picked on the validation slice: 16 of the 20 features are noise


def build_model(x_train: np.ndarray) -> Any:
    """Normalization (adapted to the train split, saved in the model) -> 64 -> 32 -> 1."""
    import keras
    from keras import layers, regularizers

    normalize = layers.Normalization(name="standardize")
    normalize.adapt(x_train)
    inputs = keras.Input((N_FEATURES,), name="features")
    x = normalize(inputs)
    x = layers.Dense(64, activation="relu", kernel_regularizer=regularizers.l2(L2))(x)
    x = layers.Dropout(0.2)(x)
    x = layers.Dense(32, activation="relu", kernel_regularizer=regularizers.l2(L2))(x)
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(1, activation="sigmoid", name="p_class_1")(x)
    return keras.Model(inputs, outputs, name="binary_mlp")


def client_instances(x: np.ndarray) -> list[list[float]]:
    """Rows (N, 20) as a client sends them: feature lists, 4 decimals."""
    return [row.round(4).tolist() for row in x]


def train(work: Path, options: TrainOptions) -> TrainResult:
    """70/30 split; early stopping on a validation slice of the 70%; test on the 30%."""
    import keras

    progress = Progress(NAME, options.quiet)
    set_seeds(options.seed)
    split = binary_mlp_split(options.data_dir, options.max_rows)
    x_train, x_test, y_train, y_test = split.x_train, split.x_test, split.y_train, split.y_test
    x_fit, x_val, y_fit, y_val = train_test_split(
        x_train, y_train, test_size=0.2, stratify=y_train, random_state=options.seed
    )
    epochs = options.epochs or DEFAULT_EPOCHS
    model = build_model(x_fit)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy", metrics=["accuracy"]
    )
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=15, restore_best_weights=True)
    progress(f"training on {len(x_fit)} rows, validating on {len(x_val)}")
    history = model.fit(
        x_fit,
        y_fit,
        validation_data=(x_val, y_val),
        epochs=epochs,
        batch_size=32,
        verbose=0,
        callbacks=[stop, progress.keras_callback(epochs)],
    )
    calibration = calibrate_keras(
        model, x_val, y_val, x_test, y_test, "test", "the validation slice (20% of the 70%)"
    )
    save_keras(model, work / MODEL_FILE)

    probabilities = np.asarray(model(x_test, training=False))
    metrics = evaluate(y_test, probabilities, LABELS, "test")
    write_errors_artifact(
        work,
        misclassified_examples(client_instances(x_test), y_test, probabilities, LABELS, "test"),
    )
    firsts = [int(np.flatnonzero(y_test == c)[0]) for c in (0, 1)]
    examples = predicted_examples(
        [x_test[i].round(4).tolist() for i in firsts],
        [LABELS[int(y_test[i])] for i in firsts],
        lambda rows: model(np.asarray(rows, dtype=np.float32), training=False),
    )
    return TrainResult(
        description="Binary classifier on 20 numeric features (scikit-learn make_classification): "
        "Keras MLP with the feature standardisation inside the model, so it takes raw features.",
        framework="keras",
        task="binary-classification",
        input=TabularInput(
            features=[Feature(name=f"x{i}", description=f"feature {i}") for i in range(N_FEATURES)]
        ),
        labels=LABELS,
        model_file=MODEL_FILE,
        training_data=TrainingData(
            source="sklearn.datasets.make_classification(n_samples=1000, n_features=20, "
            "n_classes=2, random_state=42), 70/30 stratified split (random_state=42)",
            sha256=split.source.sha256,
            train_size=len(x_fit),
            validation_size=len(x_val),
            test_size=len(x_test),
            notes="validation slice (20% of the 70%) used for early stopping only",
        ),
        hyperparameters={
            "layers": [64, 32, 1],
            "dropout": 0.2,
            "l2": L2,
            "optimizer": "adam",
            "learning_rate": 1e-3,
            "batch_size": 32,
            "max_epochs": epochs,
            "epochs_run": len(history.history["loss"]),
            "early_stopping": "val_loss, patience 15, best weights restored",
            "best_val_loss": round(float(min(history.history["val_loss"])), 4)
            if history.history["val_loss"] and not math.isnan(min(history.history["val_loss"]))
            else None,
        },
        metrics=metrics,
        examples=examples,
        calibration=calibration,
        history=history.history,
        libraries=("numpy", "scikit-learn", "keras", "tensorflow", "tensorflow-cpu"),
        intended_use="Demonstration of a small Keras model on tabular data.",
        limitations="Synthetic data: the features mean nothing outside this dataset.",
    )
