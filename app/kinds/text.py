"""Text input: raw review text, tokenised per batch with the version's saved vocabulary."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import Field, StringConstraints

from app.attributions.base import Explainer
from app.attributions.text import TextShapley
from app.budget import RequestBudget
from app.codecs.v2 import TensorSpec
from app.errors import InvalidInput, ServingError
from app.kinds.base import (
    NO_WARNINGS,
    InputLimits,
    InputWarning,
    RowWarnings,
)
from app.kinds.report import text_examples, text_sample
from app.kinds.statistics import InputStatistics
from app.kinds.utf8 import Utf8TextAdapter
from app.preprocessing.text import (
    UNKNOWN_ID,
    EncodedText,
    TextVectorizer,
    no_known_word,
    tokenize_bytes,
)
from app.runtimes.base import Model
from app.schemas.card import CardExample, ModelCard, OutOfDomainChecks, TextInput
from app.settings import ExplainSettings


class TextAdapter(Utf8TextAdapter):
    """Raw review text, encoded with the version's saved vocabulary; V2: `text`, BYTES [N]
    (or [N, 1]) of UTF-8.

    `to_row` only checks and wraps the text (on the event loop, per request); the texts are
    tokenised per batch on the model's worker (`featurize_batch`), which also refuses a text
    with no word the model knows, for its own request only: such a text would otherwise
    reach the model as an empty bag, and the model's bias would answer it with confidence.
    """

    def __init__(self, card: ModelCard, folder: Path, limits: InputLimits) -> None:
        super().__init__(card, folder, limits)
        assert isinstance(card.input, TextInput)
        self.spec = card.input
        self.language = card.input.language
        self._vectorizer: TextVectorizer | None = None

    def load(self) -> None:
        self._vectorizer = TextVectorizer.load(
            self.folder / self.spec.vocabulary_file,
            self.spec.sequence_length,
            ordered=self.spec.ordered,
        )

    @property
    def vectorizer(self) -> TextVectorizer:
        """The saved vocabulary (after `load()`)."""
        assert self._vectorizer is not None, "load() first"
        return self._vectorizer

    @classmethod
    def instance_type(cls, card: ModelCard, max_text_chars: int) -> Any:
        return Annotated[
            str,
            StringConstraints(min_length=1, max_length=max_text_chars),
            Field(description=f"Review text in English, up to {max_text_chars} characters."),
        ]

    @classmethod
    def statistics(cls, card: ModelCard, folder: Path | None) -> InputStatistics:
        assert isinstance(card.input, TextInput)
        if folder is None:
            raise ValueError("text statistics need the model folder (its vocabulary)")
        return TextStatistics(
            TextVectorizer.load(
                folder / card.input.vocabulary_file,
                card.input.sequence_length,
                ordered=card.input.ordered,
            )
        )

    out_of_domain_check = "unknown-words"  # card.out_of_domain: see _warn
    explanation_method = (
        "Shapley values (antithetic permutation sampling) of the words and word pairs the "
        "model looked up; unknown words share the [UNK] token."
    )

    def explainer(self, model: Model, settings: ExplainSettings) -> Explainer:
        return TextShapley(
            self.card,
            model.predict,
            self.vectorizer,
            permutations=settings.explain_text_permutations,
        )

    @classmethod
    def report_inputs(cls, card: ModelCard) -> str:
        spec = card.input
        assert isinstance(spec, TextInput)
        return (
            f"<p>Raw text: up to {spec.sequence_length} tokens (words"
            f"{' and word pairs' if spec.ngram_max > 1 else ''}), "
            f"{'lower-cased' if spec.lowercase else 'case kept'}; vocabulary in "
            f"<code>{escape(spec.vocabulary_file)}</code>. {escape(spec.description or '')}</p>"
        )

    @classmethod
    def report_examples(cls, card: ModelCard, examples: list[dict[str, Any]]) -> str:
        return text_examples(examples)

    @classmethod
    def report_sample(cls, card: ModelCard, example: CardExample) -> str:
        return text_sample(example)

    def training_rows(self, values: list[Any]) -> list[Any]:
        # `encode`, not `to_row`: no refusal of a review with no known word.
        return [EncodedText(text, self.vectorizer.encode(text)) for text in values]

    @property
    def instance_help(self) -> str:
        return f"a string of review text, 1 to {self.limits.max_text_chars} characters"

    @property
    def tensor_spec(self) -> TensorSpec:
        return TensorSpec("text", ("BYTES",), (), "BYTES [N] of UTF-8 review text")

    def to_row(self, instance: Any, budget: RequestBudget | None = None) -> EncodedText:
        # Not encoded here: tokenising is per batch, on the worker (see the class).
        return EncodedText(str(instance))

    def no_known_word(self) -> InvalidInput:
        """The client error for a text with no word of the vocabulary."""
        language = f"{self.language} " if self.language else ""
        known = (
            f"the {self.vectorizer.word_count:,} {language}words of its vocabulary"
            if self.spec.ordered  # an imported model's saved vocabulary
            else f"the {self.vectorizer.word_count:,} most frequent {language}words of its "
            "training reviews (and pairs of them)"
        )
        return InvalidInput(
            f"no known word was found in the text, so the model cannot read it: it knows "
            f"{known}; markup, punctuation and other words carry nothing. Send the "
            f"{'text' if self.spec.ordered else 'review'}'s words"
        )

    def encode(self, row: Any) -> np.ndarray:
        """One row's ids (`row.ids` when it was encoded already)."""
        if isinstance(row, EncodedText):
            return row.ids if row.ids is not None else self.vectorizer.encode(row.text)
        return self.vectorizer.encode(str(row))

    def _warn(
        self,
        checks: OutOfDomainChecks,
        rows: list[Any],
        features: np.ndarray,
        embedded: np.ndarray | None,
    ) -> list[RowWarnings] | None:
        max_unknown, min_known = checks.max_unknown_share, checks.min_known_words
        warned: list[RowWarnings] = []
        for row in rows:
            if isinstance(row, EncodedText) and row.words is not None and row.known is not None:
                words, known = row.words, row.known  # counted by featurize_batch
            else:
                text = row.text if isinstance(row, EncodedText) else str(row)
                words, known = self.vectorizer.word_counts(text)
            found: list[InputWarning] = []
            unknown = 1.0 - known / words if words else 1.0
            if max_unknown is not None and unknown > max_unknown:
                language = self.language or "the training texts' language"
                found.append(
                    InputWarning(
                        "unknown_words",
                        f"{words - known} of the {words} words are unknown to the model (it "
                        f"knows the frequent words of {language} movie reviews): the text may "
                        "be in another language or about something else, so its answer "
                        "rests on the few words it knows",
                    )
                )
            if min_known is not None and known < min_known:
                found.append(
                    InputWarning(
                        "too_few_words",
                        f"only {known} known word{'s' if known != 1 else ''} (the model was "
                        f"calibrated on reviews of at least {min_known}): too little to go on "
                        "for a confident answer",
                    )
                )
            warned.append(tuple(found) if found else NO_WARNINGS)
        return warned

    def rows_from(self, rows: list[Any]) -> list[Any]:
        # Another version's ids index its own vocabulary: re-read the texts with this one.
        return [row.text if isinstance(row, EncodedText) else row for row in rows]

    def featurize(self, rows: list[Any]) -> np.ndarray:
        # Rows from to_row; plain texts too (training's profile and backfill featurise raw
        # reviews, where a review without a known word is data, not an error).
        return self.vectorizer.pad([self.encode(row) for row in rows])

    def featurize_batch(self, rows: list[Any]) -> tuple[np.ndarray, dict[int, ServingError]]:
        # Each text is split once: its ids and word counts go back into the batch's own list
        # of rows, where the batch's warnings (`_warn`) read the counts.
        encode = self.vectorizer.encode_counted
        encoded = []
        for index, row in enumerate(rows):
            if isinstance(row, EncodedText) and row.ids is None:
                row = rows[index] = EncodedText(row.text, *encode(row.text))
            encoded.append(self.encode(row))
        refused: dict[int, ServingError] = {
            index: self.no_known_word()
            for index, (row, ids) in enumerate(zip(rows, encoded, strict=True))
            if isinstance(row, EncodedText) and no_known_word(ids)
        }
        return self.vectorizer.pad(encoded), refused


class TextStatistics(InputStatistics):
    """`token_count` (words after tokenisation) and `oov_share` (share of those words that
    are not in the model's vocabulary); stored as the vocabulary ids of the words as int32
    (1 = unknown; the model's n-gram input follows from them)."""

    def __init__(self, vectorizer: TextVectorizer) -> None:
        self.names = ["token_count", "oov_share"]
        # Word -> id (unigrams; a bigram counts only when both its words are known, so the
        # model's n-gram input follows from the word ids: they are its compact form).
        self._word_ids = {
            gram.encode(): index
            for index, gram in enumerate(vectorizer.vocabulary[1:], start=UNKNOWN_ID + 1)
            if " " not in gram
        }

    def measure(self, rows: Sequence[Any]) -> tuple[np.ndarray, list[bytes]]:
        stats = np.empty((len(rows), 2))
        compact = []
        get = self._word_ids.get
        for index, row in enumerate(rows):
            # Served rows are EncodedText (the adapter's); training passes the texts themselves.
            text = row.text if isinstance(row, EncodedText) else str(row)
            ids = [get(word, UNKNOWN_ID) for word in tokenize_bytes(text)]
            stats[index, 0] = len(ids)
            stats[index, 1] = ids.count(UNKNOWN_ID) / len(ids) if ids else 0.0
            compact.append(np.array(ids, dtype=np.int32).tobytes())
        return stats, compact

    def compute(self, rows: Sequence[Any]) -> np.ndarray:
        return self.measure(rows)[0]

    def compact(self, rows: Sequence[Any]) -> list[bytes]:
        return self.measure(rows)[1]
