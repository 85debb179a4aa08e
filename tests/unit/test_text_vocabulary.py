"""A saved vocabulary for an imported Keras model taking token ids (issue 22): the file as
Keras lists it (`get_vocabulary()`: padding, [UNK], tokens) read into the server's form, the
refusals, and the server's tokeniser giving the words' ids in order."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.preprocessing.text import TextVectorizer, no_known_word
from training.importing.errors import ImportRefused
from training.importing.vocabulary import read_vocabulary

KERAS = ["", "[UNK]", "good", "bad", "film", "plot"]


def test_a_keras_vocabulary_file_keeps_its_ids(tmp_path: Path) -> None:
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(KERAS) + "\n", encoding="utf-8")
    entries = read_vocabulary(path)
    assert entries == KERAS[1:]  # line j holds id j + 1: the ids stay Keras's
    assert read_vocabulary(KERAS) == entries
    assert read_vocabulary(KERAS[1:]) == entries  # [UNK] first: padding implied
    path.write_text("\r\n".join(KERAS), encoding="utf-8")  # Windows line ends, no last newline
    assert read_vocabulary(path) == entries


def test_words_in_order_become_their_ids_cut_and_padded() -> None:
    vectorizer = TextVectorizer(KERAS[1:], 4, ordered=True)
    # "the" is unknown (1); punctuation separates; the order is kept, repeats too.
    assert vectorizer.transform(
        ["Good film, the FILM!", "bad good bad plot good", "..."]
    ).tolist() == [
        [2, 4, 1, 4],
        [3, 2, 3, 5],
        [1, 0, 0, 0],
    ]
    bag = TextVectorizer(KERAS[1:], 4)  # the built-in models' form is unchanged
    assert bag.transform(["film good film"]).tolist() == [[2, 4, 0, 0]]
    with pytest.raises(ValueError, match="no pairs"):
        TextVectorizer(["[UNK]", "good", "good film"], 4, ordered=True)


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (["good", "bad"], "must list token id k on line k"),
        (["", "[UNK]"], "no token besides"),
        (["", "[UNK]", "Good"], "token id 2 ('Good') is not a word"),
        (["", "[UNK]", "good film"], "token id 2 ('good film')"),
        (["", "[UNK]", "don't"], "token id 2"),
        (["[UNK]", "good", "bad", "good"], "'good' is listed twice (id 4)"),
    ],
)
def test_a_vocabulary_the_server_cannot_use_is_refused(entries: list[str], message: str) -> None:
    with pytest.raises(ImportRefused, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_vocabulary(entries)


def test_an_unreadable_vocabulary_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImportRefused, match="cannot read the vocabulary"):
        read_vocabulary(tmp_path / "missing.txt")


def test_a_text_with_no_known_word_is_told_apart_in_both_forms() -> None:
    ordered = TextVectorizer(KERAS[1:], 4, ordered=True)
    bag = TextVectorizer(KERAS[1:], 4)
    for vectorizer in (ordered, bag):
        assert no_known_word(vectorizer.encode("the and of"))
        assert no_known_word(vectorizer.encode("!!!"))
        assert not no_known_word(vectorizer.encode("the film"))
        assert not no_known_word(vectorizer.encode("film the"))
