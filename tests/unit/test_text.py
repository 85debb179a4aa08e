"""Tokenisation and the n-gram vectorizer shared by training and serving."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.preprocessing.text import UNKNOWN, UNKNOWN_ID, TextVectorizer, tokenize

REVIEWS = [
    "This movie was not good. Not good at all!<br /><br />I didn't like it.",
    "A good movie, a GOOD movie: I liked it, not good for kids though.",
    "Not bad at all; really good acting.",
    "Bad. Bad, bad plot... but good music.",
]


def test_tokenize_lowercases_strips_markup_and_punctuation() -> None:
    assert tokenize("Great<br />film!! <i>Loved</i> it, didn't I?") == [
        "great",
        "film",
        "loved",
        "it",
        "didnt",
        "i",
    ]
    assert tokenize("Curly \u2019quotes\u2019 \u2014 and dashes\u2026 caf\u00e9") == [
        "curly",
        "quotes",
        "and",
        "dashes",
        "caf\u00e9",
    ]
    assert tokenize("") == []
    assert tokenize("!!! ...") == []


def test_fit_is_deterministic_and_keeps_frequent_words_and_pairs() -> None:
    first = TextVectorizer.fit(REVIEWS, max_tokens=50, sequence_length=16)
    second = TextVectorizer.fit(list(reversed(REVIEWS)), max_tokens=50, sequence_length=16)
    assert first.vocabulary == second.vocabulary
    assert first.vocabulary[0] == UNKNOWN
    assert "good" in first.vocabulary and "not good" in first.vocabulary
    assert "music" not in first.vocabulary  # in one review only (min 2 documents)


def test_encode_gives_sorted_distinct_ids_words_and_pairs() -> None:
    vectorizer = TextVectorizer.fit(REVIEWS, max_tokens=50, sequence_length=16)
    ids = vectorizer.encode("not good, not good")
    words = {vectorizer.vocabulary[i - 1] for i in ids}
    assert words == {"not", "good", "not good"}
    assert list(ids) == sorted(set(ids.tolist()))


def test_unknown_words_map_to_unk_and_nothing_is_never_empty() -> None:
    vectorizer = TextVectorizer.fit(REVIEWS, max_tokens=50, sequence_length=16)
    assert vectorizer.encode("zyzzyva quux").tolist() == [UNKNOWN_ID]
    assert vectorizer.encode("").tolist() == [UNKNOWN_ID]
    assert vectorizer.encode("?!").tolist() == [UNKNOWN_ID]


def test_transform_pads_and_truncates_to_the_sequence_length() -> None:
    vectorizer = TextVectorizer.fit(REVIEWS, max_tokens=50, sequence_length=3)
    batch = vectorizer.transform(["good movie not bad at all", "good"])
    assert batch.shape == (2, 3) and batch.dtype == np.int32
    assert (batch[0] > 0).all()
    assert batch[1, 1:].tolist() == [0, 0]


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    vectorizer = TextVectorizer.fit(REVIEWS, max_tokens=50, sequence_length=16)
    path = tmp_path / "vocabulary.txt"
    vectorizer.save(path)
    loaded = TextVectorizer.load(path, 16)
    assert loaded.vocabulary == vectorizer.vocabulary
    np.testing.assert_array_equal(loaded.transform(REVIEWS), vectorizer.transform(REVIEWS))


def test_a_broken_vocabulary_is_refused() -> None:
    with pytest.raises(ValueError, match="start with"):
        TextVectorizer(["good"], 8)
    with pytest.raises(ValueError, match="duplicate"):
        TextVectorizer([UNKNOWN, "good", "good"], 8)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        TextVectorizer([UNKNOWN, "good", "not good"], 8)


@pytest.mark.parametrize(
    "text", ["", "   \n\t", "<br /><br />", "!!! ... ???", "asdf qwerty", "<p>zzz</p>"]
)
def test_a_text_with_no_known_word_is_refused(text: str) -> None:
    from app.preprocessing.text import NoKnownWordError

    vectorizer = TextVectorizer.fit(REVIEWS, max_tokens=50, sequence_length=8)
    with pytest.raises(NoKnownWordError):
        vectorizer.encode_known(text)
    assert vectorizer.encode(text).tolist() == [UNKNOWN_ID]  # what the model used to get


def test_encode_known_and_pad_give_what_transform_gives() -> None:
    vectorizer = TextVectorizer.fit(REVIEWS, max_tokens=50, sequence_length=8)
    texts = ["asdf good movie", "not bad, qwerty"]
    rows = [vectorizer.encode_known(text) for text in texts]
    np.testing.assert_array_equal(vectorizer.pad(rows), vectorizer.transform(texts))
    assert vectorizer.word_count == sum(" " not in g for g in vectorizer.vocabulary[1:])


@pytest.mark.parametrize("ordered", [False, True])
def test_encode_counted_is_encode_and_word_counts_from_one_split(ordered: bool) -> None:
    # The family: texts with known and unknown words, markup, punctuation only, nothing,
    # non-ASCII, and more words than the sequence length (counts cover every word).
    vocabulary = TextVectorizer.fit(REVIEWS, max_tokens=50, sequence_length=4).vocabulary
    if ordered:
        vocabulary = [gram for gram in vocabulary if " " not in gram]
    vectorizer = TextVectorizer(vocabulary, sequence_length=4, ordered=ordered)
    texts = [
        *REVIEWS,
        "",
        "!!! ...",
        "<b>zzz</b> qqq",
        "caf\u00e9 good \u2014 not bad",
        " ".join(["good", "xyz"] * 40),
    ]
    ids_of = {word: index + 1 for index, word in enumerate(vocabulary) if index}
    for text in texts:
        ids, words, known = vectorizer.encode_counted(text)
        np.testing.assert_array_equal(ids, vectorizer.encode(text))
        assert ids.dtype == np.int32
        tokens = tokenize(text)
        assert (words, known) == (len(tokens), sum(t in ids_of for t in tokens)), text
        assert (words, known) == vectorizer.word_counts(text), text
        if ordered:  # the first words' ids, in order ([UNK] alone for a text of none)
            expected = [ids_of.get(t, UNKNOWN_ID) for t in tokens[:4]] or [UNKNOWN_ID]
            assert ids.tolist() == expected, text
