"""Each component takes only the settings groups it reads (issue 21): the whole `Settings`
object is seen by the composition roots alone, which hand each part its groups.

The scanner reads the syntax tree of every file of `app/` and fails on a parameter, an
attribute or a return value annotated with `Settings` (alone, optional, or inside another
type) outside the roots. Reading a group through the whole object elsewhere would need one
of those annotations, or an untyped parameter, which mypy's strict mode refuses.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Where the whole object may appear, and why.
COMPOSITION_ROOTS = {
    "app/__main__.py": "reads the environment, reports a bad setting and starts the server",
    "app/main.py": "create_app: builds every part from its groups",
    "app/service.py": "PredictionService: builds the core and the lifecycle from their groups",
}
# The settings package defines the object (and its groups).
SETTINGS_HOME = "app/settings/"


def _names_settings(annotation: ast.expr | None) -> bool:
    """True when the annotation mentions the whole-settings class `Settings`."""
    if annotation is None:
        return False
    for node in ast.walk(annotation):
        if isinstance(node, ast.Name) and node.id == "Settings":
            return True
        if isinstance(node, ast.Attribute) and node.attr == "Settings":
            return True
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            try:
                inner = ast.parse(node.value, mode="eval").body
            except SyntaxError:
                continue
            if _names_settings(inner):
                return True
    return False


def whole_settings_uses(source: str) -> list[str]:
    """`line: what` for each annotation of the whole `Settings` in one module's source."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            arguments = node.args
            every = [
                *arguments.posonlyargs,
                *arguments.args,
                *arguments.kwonlyargs,
                *(a for a in (arguments.vararg, arguments.kwarg) if a is not None),
            ]
            for argument in every:
                if _names_settings(argument.annotation):
                    found.append(f"{node.lineno}: parameter {argument.arg!r} of {node.name}()")
            if _names_settings(node.returns):
                found.append(f"{node.lineno}: the return value of {node.name}()")
        elif isinstance(node, ast.AnnAssign) and _names_settings(node.annotation):
            found.append(f"{node.lineno}: {ast.unparse(node.target)}")
    return found


def test_only_the_composition_roots_take_the_whole_settings() -> None:
    offenders: list[str] = []
    for path in sorted((ROOT / "app").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative in COMPOSITION_ROOTS or relative.startswith(SETTINGS_HOME):
            continue
        for use in whole_settings_uses(path.read_text(encoding="utf-8")):
            offenders.append(f"{relative}:{use}")
    assert not offenders, (
        "these take the whole `Settings`; give them only the groups they read (for example "
        "`serving: ServingSettings, limits: LimitsSettings`) and pass those from a composition "
        f"root ({', '.join(sorted(COMPOSITION_ROOTS))}):\n  " + "\n  ".join(offenders)
    )


def test_every_composition_root_still_exists() -> None:
    """A root that was renamed or removed leaves a stale entry that could excuse a new file."""
    missing = [name for name in COMPOSITION_ROOTS if not (ROOT / name).is_file()]
    assert not missing, f"composition roots that no longer exist: {missing}"


def test_the_scanner_finds_each_form_of_the_annotation() -> None:
    source = (
        "def a(settings: Settings) -> None: ...\n"
        "async def b(*, s: Settings | None = None) -> None: ...\n"
        "def c(s: 'app.settings.Settings') -> None: ...\n"
        "def d() -> Settings: ...\n"
        "class E:\n    settings: Settings\n"
        "def f(serving: ServingSettings, limits: LimitsSettings) -> None: ...\n"
    )
    assert [use.split(":")[0] for use in whole_settings_uses(source)] == ["1", "2", "3", "4", "6"]
