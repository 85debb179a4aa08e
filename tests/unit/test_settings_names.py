"""Environment variable names are a public contract: this lists every one the settings read
(derived from the settings model, groups included) and holds it against the settings table in
docs/settings.md and against a committed snapshot, so renaming or dropping one fails here."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import AliasChoices, AliasPath, BaseModel

from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT = Path(__file__).with_name("settings_env_names.txt")
PREFIX = "SYNERGY_"


def _names_of(field_name: str, alias: object) -> set[str]:
    if alias is None:
        return {PREFIX + field_name.upper()}
    if isinstance(alias, str):
        return {alias.upper()}
    if isinstance(alias, AliasChoices):
        return {choice.upper() for choice in alias.choices if isinstance(choice, str)}
    assert not isinstance(alias, AliasPath), "an alias path is not an environment variable"
    raise AssertionError(f"unexpected alias {alias!r}")


def environment_variables(model: type[BaseModel] = Settings) -> set[str]:
    """Every `SYNERGY_*` variable the model reads: one per leaf field (its alias if it has
    one), walking into sub-settings groups; `*_FILE` variables are fields of their own."""
    names: set[str] = set()
    for name, field in model.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            names |= environment_variables(kind)
        else:
            names |= _names_of(name, field.validation_alias)
    return names


def documented_variables() -> set[str]:
    """The variables named in the first column of docs/settings.md's settings table."""
    names: set[str] = set()
    for line in (ROOT / "docs" / "settings.md").read_text().splitlines():
        if line.startswith("| `"):
            names |= set(re.findall(r"`(SYNERGY_[A-Z0-9_]+)`", line.split("|")[1]))
    return names


def test_every_variable_the_settings_read_is_in_the_settings_table() -> None:
    assert sorted(environment_variables() - documented_variables()) == []


def test_every_variable_in_the_settings_table_is_read() -> None:
    assert sorted(documented_variables() - environment_variables()) == []


def test_variable_names_match_the_snapshot() -> None:
    snapshot = set(SNAPSHOT.read_text().split())
    assert sorted(environment_variables() ^ snapshot) == []


def test_each_keys_file_variable_has_its_keys_variable() -> None:
    names = environment_variables()
    files = {name for name in names if name.endswith("_FILE")}
    assert files == {"SYNERGY_API_KEYS_FILE", "SYNERGY_ADMIN_API_KEYS_FILE"}
    assert {name.removesuffix("_FILE") for name in files} <= names
