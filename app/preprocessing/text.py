"""Review text -> n-gram ids: shared by training and serving, so there is no skew.

Tokenisation happens outside the Keras graph (TensorFlow's TextVectorization layer would tie
the `.keras` file to one backend). Text is lower-cased, `<br />` and other tags are dropped,
apostrophes are removed inside words ("don't" -> "dont") and every other ASCII punctuation
mark separates words.

The vocabulary is a plain UTF-8 file, one n-gram a line, saved next to the model: unigrams and
bigrams ("not good"). Id 0 is padding; the first entry, `[UNK]` (id 1), stands for every
unknown word, so a text of unknown words still has an input. A bigram counts only when both
its words are in the vocabulary; that lets serving look bigrams up as pairs of word ids with
NumPy instead of building a string per word pair (this runs on the hot path of every review).
A text becomes the sorted ids of its distinct n-grams (a bag: order carries nothing for an
averaging model), cut to `sequence_length` (so the most frequent n-grams stay), 0-padded. An
imported model that takes token sequences with a saved vocabulary of words (`ordered`) gets
its words' ids in the text's order instead, cut to `sequence_length`, 0-padded.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PADDING_ID = 0
UNKNOWN = "[UNK]"
UNKNOWN_ID = 1

_MARKUP = re.compile(r"<[^>]{0,200}>")
# ASCII letters and digits (and every byte of a multi-byte UTF-8 character) stay; other ASCII
# bytes become spaces; apostrophes and backticks are deleted.
_KEEP = set(b"abcdefghijklmnopqrstuvwxyz0123456789")
_BYTE_TABLE = bytes(c if c in _KEEP or c >= 0x80 else 0x20 for c in range(256))
_DELETE = b"'`"
_UNICODE_PUNCTUATION = str.maketrans(
    {
        "\u2019": None,
        "\u2018": None,  # curly apostrophes, deleted like "'"
        "\u201c": " ",
        "\u201d": " ",
        "\u2014": " ",
        "\u2013": " ",
        "\u2026": " ",
        "\u00a0": " ",
        "\u00ab": " ",
        "\u00bb": " ",
        "\u00b4": None,
    }
)


def tokenize_bytes(text: str) -> list[bytes]:
    """The words of a text as UTF-8 bytes (the fast form serving uses)."""
    text = text.lower()
    if "<" in text:
        text = text.replace("<br />", " ")  # IMDb's line breaks; str.replace is cheap
        if "<" in text:
            text = _MARKUP.sub(" ", text)
    if not text.isascii():
        text = text.translate(_UNICODE_PUNCTUATION)
    return text.encode("utf-8", "replace").translate(_BYTE_TABLE, _DELETE).split()


def tokenize(text: str) -> list[str]:
    """The words of a text: lower-case, no HTML tags, no punctuation."""
    return [token.decode("utf-8", "replace") for token in tokenize_bytes(text)]


@dataclass(frozen=True, slots=True)
class EncodedText:
    """One review as the model reads it: its n-gram ids (see TextVectorizer.encode), with the
    text they came from, for what works on words rather than ids (explanations, monitoring).

    `ids` is None for a review not yet encoded: the server encodes a batch of reviews on the
    model's worker thread (`TextAdapter.featurize_batch`), not each on the event loop. That
    encoding also counts the text's words and the known ones among them (`words`, `known`;
    None when not counted), which the out-of-domain check reads instead of tokenising the
    text a second time."""

    text: str
    ids: np.ndarray | None = None
    words: int | None = None
    known: int | None = None


def no_known_word(ids: np.ndarray) -> bool:
    """Whether a text's ids (`TextVectorizer.encode`) hold no known word: [UNK] alone (a
    bag), or only [UNK]s (words in order)."""
    # Ends first: a bag is sorted, so only [UNK] alone has [UNK] at both ends (no array pass).
    return bool(
        ids[0] == UNKNOWN_ID
        and ids[-1] == UNKNOWN_ID
        and (ids.size == 1 or (ids == UNKNOWN_ID).all())
    )


class NoKnownWordError(ValueError):
    """The text has no word in the vocabulary: the model would see an empty bag."""


class TextVectorizer:
    """Maps texts to fixed-length rows of vocabulary ids (0-padded), ready for an Embedding."""

    def __init__(
        self, vocabulary: Sequence[str], sequence_length: int, *, ordered: bool = False
    ) -> None:
        if not vocabulary or vocabulary[0] != UNKNOWN:
            raise ValueError(f"the vocabulary must start with {UNKNOWN}")
        if len(set(vocabulary)) != len(vocabulary):
            raise ValueError("the vocabulary has duplicate entries")
        if ordered and any(" " in gram for gram in vocabulary):
            raise ValueError("a vocabulary of token sequences holds single words, no pairs")
        self.vocabulary = list(vocabulary)
        self.sequence_length = sequence_length
        # A sequence model's input (an imported model taking token ids): each word's id in
        # the text's order, the first sequence_length of them, instead of the sorted bag.
        self.ordered = ordered
        self._word_ids: dict[bytes, int] = {}
        pairs: list[tuple[int, int]] = []
        bigram_ids: list[int] = []
        for index, gram in enumerate(self.vocabulary[1:], start=UNKNOWN_ID + 1):
            words = gram.split(" ")
            if len(words) == 1:
                self._word_ids[gram.encode()] = index
            elif len(words) == 2:
                pairs.append((words[0].encode(), words[1].encode()))  # type: ignore[arg-type]
                bigram_ids.append(index)
            else:
                raise ValueError(f"vocabulary entry {gram!r} is not a word or a word pair")
        # A bigram is keyed by its two word ids: first * base + second.
        self._base = len(self.vocabulary) + 1
        keys, ids = [], []
        for (first, second), index in zip(pairs, bigram_ids, strict=True):
            first_id, second_id = self._word_ids.get(first), self._word_ids.get(second)  # type: ignore[call-overload]
            if first_id is None or second_id is None:
                raise ValueError(
                    f"bigram {self.vocabulary[index - 1]!r} has a word outside the vocabulary"
                )
            keys.append(first_id * self._base + second_id)
            ids.append(index)
        order = np.argsort(np.asarray(keys, dtype=np.int64), kind="stable")
        self._bigram_keys = np.asarray(keys, dtype=np.int64)[order]
        self._bigram_ids = np.asarray(ids, dtype=np.int32)[order]

    @property
    def word_count(self) -> int:
        """Single words in the vocabulary (the rest are word pairs and [UNK])."""
        return len(self._word_ids)

    @property
    def input_dim(self) -> int:
        """Size of the Embedding table this vocabulary needs (vocabulary + padding)."""
        return len(self.vocabulary) + 1

    @classmethod
    def fit(
        cls,
        texts: Iterable[str],
        *,
        max_tokens: int,
        sequence_length: int,
        min_document_count: int = 2,
    ) -> TextVectorizer:
        """The vocabulary: the `max_tokens` words and bigrams found in the most documents.

        Ties break alphabetically, so the same data always gives the same vocabulary; bigrams
        whose words did not make it are skipped (they could never be looked up).
        """
        counts: Counter[bytes] = Counter()
        for text in texts:
            tokens = tokenize_bytes(text)
            counts.update(set(tokens))
            counts.update(set(map(b" ".join, itertools.pairwise(tokens))))
        ranked = sorted(
            ((count, gram) for gram, count in counts.items() if count >= min_document_count),
            key=lambda item: (-item[0], item[1]),
        )
        words: set[bytes] = set()
        chosen: list[bytes] = []
        for _, gram in ranked:
            if len(chosen) >= max_tokens - 1:
                break
            parts = gram.split(b" ")
            if len(parts) == 1:
                words.add(gram)
            elif not (parts[0] in words and parts[1] in words):
                continue
            chosen.append(gram)
        vocabulary = [UNKNOWN] + [gram.decode("utf-8", "replace") for gram in chosen]
        return cls(vocabulary, sequence_length)

    def encode(self, text: str) -> np.ndarray:
        """Sorted ids of the distinct n-grams of one text (int32); `ordered`: the ids of its
        words in order (unknown ones `UNKNOWN_ID`), the first `sequence_length`."""
        tokens = tokenize_bytes(text)
        if self.ordered:  # only the words the model reads are looked up
            tokens = tokens[: self.sequence_length]
        return self._ids(self._word_ids_of(tokens))

    def encode_counted(self, text: str) -> tuple[np.ndarray, int, int]:
        """`(encode(text), words, known)`: the ids, and `word_counts(text)` from the same
        split of the text (one tokenisation where a batch needs both)."""
        tokens = tokenize_bytes(text)
        words = self._word_ids_of(tokens)
        return self._ids(words), len(tokens), int(np.count_nonzero(words != UNKNOWN_ID))

    def _word_ids_of(self, tokens: list[bytes]) -> np.ndarray:
        """Each token's vocabulary id, in order (`UNKNOWN_ID` for unknown words), int64."""
        get = self._word_ids.get
        return np.array([get(token, UNKNOWN_ID) for token in tokens], dtype=np.int64)

    def _ids(self, words: np.ndarray) -> np.ndarray:
        """What `encode` returns for a text whose word ids (in order) are `words`."""
        if self.ordered:
            in_order = words[: self.sequence_length]
            return (in_order if in_order.size else np.array([UNKNOWN_ID])).astype(np.int32)
        if words.size > 1 and self._bigram_keys.size:
            known = (words[:-1] != UNKNOWN_ID) & (words[1:] != UNKNOWN_ID)
            keys = (words[:-1] * self._base + words[1:])[known]
            slots = np.searchsorted(self._bigram_keys, keys)
            slots[slots == self._bigram_keys.size] = 0
            found = self._bigram_keys[slots] == keys
            ids = np.concatenate([words, self._bigram_ids[slots[found]]])
        else:
            ids = words
        if ids.size == 0:
            return np.array([UNKNOWN_ID], dtype=np.int32)
        return np.unique(ids)[: self.sequence_length].astype(np.int32)

    def word_counts(self, text: str) -> tuple[int, int]:
        """(words, words in the vocabulary) of one text, as `encode` splits it."""
        tokens = tokenize_bytes(text)
        words = self._word_ids
        return len(tokens), sum(1 for token in tokens if token in words)

    def encode_known(self, text: str) -> np.ndarray:
        """`encode`, refusing a text with no word in the vocabulary (NoKnownWordError).

        Whitespace, markup, punctuation or words the model never saw all encode to the
        unknown id alone; a model given that answers from its bias, not from the text.
        """
        ids = self.encode(text)
        if no_known_word(ids):
            raise NoKnownWordError("no word of the text is in the vocabulary")
        return ids

    def pad(self, encoded: Sequence[np.ndarray]) -> np.ndarray:
        """Rows from `encode` -> an (N, sequence_length) int32 array, 0-padded."""
        batch = np.zeros((len(encoded), self.sequence_length), dtype=np.int32)
        for row, ids in enumerate(encoded):
            batch[row, : ids.size] = ids
        return batch

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """Encode a batch of texts into an (N, sequence_length) int32 array."""
        return self.pad([self.encode(text) for text in texts])

    def save(self, path: Path) -> None:
        """Write the vocabulary, one n-gram a line (line k holds id k + 1)."""
        path.write_text("".join(gram + "\n" for gram in self.vocabulary), encoding="utf-8")

    @classmethod
    def load(cls, path: Path, sequence_length: int, *, ordered: bool = False) -> TextVectorizer:
        """Read a vocabulary written by `save`."""
        entries = path.read_text(encoding="utf-8").split("\n")[:-1]
        return cls(entries, sequence_length, ordered=ordered)
