"""A saved vocabulary for a Keras model that takes token ids (`--vocabulary vocab.txt`): one
token a line, line k holding token id k, as Keras's `TextVectorization.get_vocabulary()`
lists it (id 0 padding, an empty line; id 1 `[UNK]`, every unknown word). A file that starts
with `[UNK]` (the server's own vocabulary files, padding implied) is taken too.

The server tokenises with its own tokeniser (`app.preprocessing.text`: lower-case, markup
dropped, apostrophes deleted, other punctuation separating words, as Keras's default
`lower_and_strip_punctuation` and whitespace split give for ordinary text) and hands the model
its words' ids in order, cut or 0-padded to the model's sequence length. So each token must be
one the tokeniser can produce: a token in upper case, with punctuation or a space could never
be looked up, and is refused (the model was tokenised some other way).
"""

from __future__ import annotations

from pathlib import Path

from app.preprocessing.text import UNKNOWN, tokenize
from training.importing.errors import ImportRefused

VOCABULARY_FILE = "vocabulary.txt"


def read_vocabulary(source: Path | str | list[str]) -> list[str]:
    """The vocabulary in the server's form (`[UNK]` first: line j holds id j + 1) from a file
    or a list as Keras lists it; raises ImportRefused naming what is wrong."""
    if isinstance(source, list):
        lines = [str(token) for token in source]
    else:
        try:
            text = Path(source).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ImportRefused(f"cannot read the vocabulary {source}: {exc}") from None
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # the last line's newline
        lines = [line.removesuffix("\r") for line in lines]
    if lines[:2] == ["", UNKNOWN]:
        entries, first_id = lines[1:], 1
    elif lines[:1] == [UNKNOWN]:
        entries, first_id = lines, 1
    else:
        raise ImportRefused(
            "the vocabulary must list token id k on line k from 0: an empty line (padding, "
            f"id 0), then {UNKNOWN} (id 1), as Keras's TextVectorization.get_vocabulary() "
            f"gives them (or start with {UNKNOWN}, padding implied)"
        )
    seen: set[str] = set()
    for token_id, token in enumerate(entries[1:], start=first_id + 1):
        if tokenize(token) != [token]:
            raise ImportRefused(
                f"vocabulary token id {token_id} ({token!r}) is not a word the server's "
                "tokeniser gives (lower case, no spaces or punctuation), so it could never be "
                "looked up; save the vocabulary of a model tokenised that way (Keras's default "
                "lower_and_strip_punctuation)"
            )
        if token in seen:
            raise ImportRefused(f"vocabulary token {token!r} is listed twice (id {token_id})")
        seen.add(token)
    if len(entries) < 2:
        raise ImportRefused("the vocabulary holds no token besides padding and [UNK]")
    return entries
