"""A Keras model taking token ids, imported with its saved vocabulary (`synergy import
model.keras --vocabulary vocab.txt`, issue 22): served as text through the server's
tokeniser, its words' ids in order, answering what the model answers for those ids."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import predict, running_app
from training.importing import save_model
from training.importing.cli import main
from training.importing.errors import ImportRefused

VOCABULARY = ["", "[UNK]", "good", "great", "bad", "awful", "film", "plot"]  # get_vocabulary()
LENGTH = 6


def _model() -> Any:
    import keras

    keras.utils.set_random_seed(0)
    ids = keras.Input((LENGTH,), dtype="int32")
    x = keras.layers.Embedding(len(VOCABULARY), 4)(ids)
    # Order matters to this model (a convolution over the sequence), as to an LSTM.
    x = keras.layers.Conv1D(3, 2)(x)
    x = keras.layers.GlobalMaxPooling1D()(x)
    return keras.Model(ids, keras.layers.Dense(2, activation="softmax")(x))


def test_the_cli_imports_a_token_id_model_with_its_vocabulary(tmp_path: Path) -> None:
    model = _model()
    model.save(tmp_path / "model.keras")
    (tmp_path / "vocab.txt").write_text("\n".join(VOCABULARY) + "\n", encoding="utf-8")
    (tmp_path / "example.csv").write_text("text\nA good film\nawful plot. bad!\n", encoding="utf-8")
    models = tmp_path / "models"
    code = main(
        [
            "import", str(tmp_path / "model.keras"), "--name", "words-ids",
            "--example", str(tmp_path / "example.csv"), "--vocabulary", str(tmp_path / "vocab.txt"),
            "--labels", "neg,pos", "--models-dir", str(models),
        ]
    )  # fmt: skip
    assert code == 0
    folder = models / "words-ids" / "1"
    assert (folder / "vocabulary.txt").read_text(encoding="utf-8").startswith("[UNK]\ngood\n")
    texts = ["A good film", "film good a", "Great plot, awful film... BAD"]
    # The ids Keras's TextVectorization would give: id k = line k of vocab.txt, in order.
    ids = np.array([[1, 2, 6, 0, 0, 0], [6, 2, 1, 0, 0, 0], [3, 7, 5, 6, 4, 0]], dtype=np.int32)
    expected = np.asarray(model.predict(ids, verbose=0), dtype=np.float64)
    assert not np.allclose(expected[0], expected[1])  # the order reaches the model
    with running_app(models) as client:
        card = client.get("/v1/models/words-ids").json()["card"]
        assert card["input"]["kind"] == "text" and card["input"]["word_order"] == "sequence"
        assert card["input"]["sequence_length"] == LENGTH
        assert "vocabulary.txt" in card["artifacts"]
        answer = predict(client, "words-ids", texts)
        assert answer.status_code == 200, answer.text
        got = np.array([list(p["probabilities"].values()) for p in answer.json()["predictions"]])
        np.testing.assert_allclose(got, expected, atol=1e-5)
        # No known word: refused like the built-in text model's, not answered from the bias.
        refused = predict(client, "words-ids", ["the and of"])
        assert refused.status_code == 422 and "6 words of its vocabulary" in refused.text
        explained = client.post(
            "/v1/models/words-ids:explain", json={"instances": ["a great film, bad plot"]}
        )
        assert explained.status_code == 200, explained.text


def test_a_vocabulary_needs_a_token_id_model(tmp_path: Path) -> None:
    import keras

    images = keras.Input((4, 4, 1))
    model = keras.Model(
        images, keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(images))
    )
    with pytest.raises(ImportRefused, match="token ids of a fixed length"):
        save_model(model, "m", example=["good"], vocabulary=VOCABULARY, models_dir=tmp_path)
    assert not (tmp_path / "m").exists()
