"""The one range of model version numbers, and the one parser of a version written as text.

A version is an integer from 1 to 2**63 - 1 (int64, Triton's and TF Serving's type), the same
for a version folder (`models/<name>/<version>/`), a card's `version`, `config.json`
(`labels`, `traffic`, `shadow`, `version_policy.specific`), a URL path and the
`X-Model-Version` header. A folder named with digits outside the range is refused at scan
with a reason (shown where failed versions are); a request naming one gets its route's
status for "not a version" (docs/lifecycle.md has the table).
"""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import Field

from app.errors import MalformedVersion

MIN_VERSION: Final = 1
MAX_VERSION: Final = 2**63 - 1
VERSION_RANGE: Final = f"integers from {MIN_VERSION} to {MAX_VERSION}"
# 2**63 - 1 has 19 digits: longer texts are out of range before int() (which refuses
# texts over 4300 digits with its own error).
_MAX_DIGITS: Final = len(str(MAX_VERSION))

VersionNumber = Annotated[
    int,
    Field(
        ge=MIN_VERSION,
        le=MAX_VERSION,
        description=f"A model version (versions are {VERSION_RANGE}).",
    ),
]


def parse_version(text: str) -> int | None:
    """A version written as text (a path segment, a header, a config key, a folder name)
    -> its number; None when it is not ASCII decimal digits or is outside the range."""
    if not (text.isascii() and text.isdigit()):
        return None
    digits = text.lstrip("0")
    if len(digits) > _MAX_DIGITS:
        return None
    value = int(text)
    return value if MIN_VERSION <= value <= MAX_VERSION else None


def is_version_folder_name(text: str) -> bool:
    """Whether a folder name is meant as a version: ASCII digits without a leading zero
    (then `parse_version` says whether it is in range)."""
    return text.isascii() and text.isdigit() and not text.startswith("0")


def not_a_version(text: str) -> str:
    """The one message for a text that is not a version (for every route's error)."""
    shown = text if len(text) <= 40 else text[:40] + "..."
    return f"{shown!r} is not a model version; versions are {VERSION_RANGE}"


def requested_version(name: str, text: str) -> int:
    """A version written in a request's path (REST or gRPC) -> its number.

    The one parser of a requested version, for every route and protocol: raises
    MalformedVersion (400, TF Serving's INVALID_ARGUMENT) for anything that is not a version
    number, the same for "x", "0" and 2**63.
    """
    version = parse_version(text)
    if version is None:
        raise MalformedVersion(f"model {name!r}: {not_a_version(text)}")
    return version
