"""The tutorial way to serve these models: FastAPI, a sync endpoint, `model.predict` on the one
instance of each request (TensorFlow backend). The baseline the issue compares against."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path
from typing import Any

import joblib
import keras
import numpy as np
from fastapi import FastAPI

from app.preprocessing.text import TextVectorizer
from app.schemas.card import ModelCard

MODELS_DIR = Path(os.environ.get("NAIVE_MODELS_DIR", "models"))
app = FastAPI()
models: dict[str, Any] = {}

for folder in sorted(MODELS_DIR.glob("*/1")):
    card = ModelCard.read(folder)
    if card.framework == "sklearn":
        model = joblib.load(folder / card.model_file)
    else:
        model = keras.saving.load_model(folder / card.model_file)
    vectorizer = (
        TextVectorizer.load(folder / card.input.vocabulary_file, card.input.sequence_length)
        if card.input.kind == "text"
        else None
    )
    models[card.name] = (card, model, vectorizer)


@app.post("/v1/models/{name}:predict")
def predict(name: str, body: dict[str, Any]) -> dict[str, Any]:
    """One instance at a time, `model.predict` every time, as the tutorials show."""
    card, model, vectorizer = models[name]
    instance = body["instances"][0]
    if card.input.kind == "tabular":
        if isinstance(instance, dict):
            instance = [instance[f.name] for f in card.input.features]
        x = np.array([instance], dtype=np.float32)
    elif card.input.kind == "image":
        x = np.array([instance], dtype=np.float32)[..., None]
    else:
        x = vectorizer.transform([instance])
    if card.framework == "sklearn":
        probabilities = model.predict_proba(x)[0]
    else:
        probabilities = model.predict(x)[0]
        if len(probabilities) == 1:
            probabilities = [1 - probabilities[0], probabilities[0]]
    probabilities = [float(p) for p in probabilities]
    best = int(np.argmax(probabilities))
    return {
        "model": name,
        "version": card.version,
        "predictions": [
            {
                "label": card.labels[best],
                "probabilities": dict(zip(card.labels, probabilities, strict=True)),
            }
        ],
    }


@app.get("/health/ready")
def ready() -> dict[str, str]:
    return {"status": "ready"}
