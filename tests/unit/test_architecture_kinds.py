"""Input kinds and tasks are plug-ins, each registered in one table (`app.kinds.KINDS`,
`app.tasks.TASKS`): no source file outside their packages switches on them.

A "switch" is what the scanner below finds in the syntax tree of every file of `app/` and
`training/`:
- on an input kind: `isinstance(x, TabularInput | ...)` with a kind's card section or class,
  a comparison of a kind's name with something named `kind` (`card.input.kind == "image"`,
  `kind in ("text", ...)`), a lookup keyed by `<...>.input.kind` other than `KINDS[...]`, and
  a dict literal keyed by two or more kind names (a second table);
- on a task: `card.is_classifier`, a comparison of a task name with something named `task`,
  a dict literal keyed by two or more task names.

Files that may still switch on the task would be listed in `TASK_ALLOWED` (none are left); an
entry that no longer switches fails the test, so the list can only shrink.

Run as a script to count, per input kind, the files that switch on it:
`python tests/unit/test_architecture_kinds.py [ROOT]` (ROOT: a checkout, default this one).
"""

from __future__ import annotations

import ast
import inspect
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("app", "training")

KIND_NAMES = {"tabular", "table", "image", "raw-image", "text", "raw-text"}
KIND_CLASSES = {
    "TabularInput": "tabular",
    "TableInput": "table",
    "ImageInput": "image",
    "TextInput": "text",
    "RawTextInput": "raw-text",
    "RawImageInput": "raw-image",
    "TabularAdapter": "tabular",
    "TableAdapter": "table",
    "ImageAdapter": "image",
    "TextAdapter": "text",
    "RawTextAdapter": "raw-text",
    "RawImageAdapter": "raw-image",
}
TASK_NAMES = {"classification", "binary-classification", "multiclass-classification", "regression"}

# Where each kind of knowledge lives.
KIND_HOME = ("app/kinds/",)
TASK_HOME = ("app/tasks.py", "app/tasks/")
# The card schema declares the tasks and checks each task's fields (a leaf every layer reads).
TASK_SCHEMA = ("app/schemas/card/",)
# Files that may still switch on the task, and why (none: every decision is the plug-in's).
TASK_ALLOWED: dict[str, str] = {}
# Files that may still switch on an input kind, and why (none: training's out-of-domain
# calibration asks the kind which check it runs, `InputAdapter.out_of_domain_check`).
KIND_ALLOWED: dict[str, str] = {}


def _mentions(node: ast.AST, word: str) -> bool:
    """Whether an expression names something containing `word` (`card.input.kind`, `kind`)."""
    return any(
        (isinstance(n, ast.Name) and word in n.id.lower())
        or (isinstance(n, ast.Attribute) and word in n.attr.lower())
        for n in ast.walk(node)
    )


def _strings(node: ast.AST) -> set[str]:
    """String constants in an expression (a literal, or a tuple/list/set of them)."""
    return {
        n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    }


def _class_names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)
    }


def switches(source: str) -> tuple[set[str], bool]:
    """(the input kinds `source` switches on, whether it switches on the task)."""
    kinds: set[str] = set()
    task = False
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "isinstance"
            and len(node.args) == 2
        ):
            kinds |= {KIND_CLASSES[c] for c in _class_names(node.args[1]) if c in KIND_CLASSES}
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            named = set().union(*(_strings(side) for side in sides))
            if named & KIND_NAMES and any(_mentions(side, "kind") for side in sides):
                kinds |= named & KIND_NAMES
            if named & TASK_NAMES and any(_mentions(side, "task") for side in sides):
                task = True
        elif isinstance(node, ast.Subscript):
            key = node.slice
            keyed_by_kind = (
                isinstance(key, ast.Attribute)
                and key.attr == "kind"
                and isinstance(key.value, ast.Attribute)
                and key.value.attr == "input"
            )
            if keyed_by_kind and not _is_name(node.value, "KINDS"):
                kinds |= KIND_NAMES
        elif isinstance(node, ast.Dict):
            keys = {
                k.value
                for k in node.keys
                if isinstance(k, ast.Constant) and isinstance(k.value, str)
            }
            if len(keys & KIND_NAMES) >= 2:
                kinds |= keys & KIND_NAMES
            if len(keys & TASK_NAMES) >= 2:
                task = True
        elif isinstance(node, ast.Attribute) and node.attr == "is_classifier":
            task = True
    return kinds, task


def _is_name(node: ast.AST, name: str) -> bool:
    return (isinstance(node, ast.Name) and node.id == name) or (
        isinstance(node, ast.Attribute) and node.attr == name
    )


def scan(root: Path) -> tuple[dict[str, set[str]], set[str]]:
    """(input kind -> the files that switch on it, the files that switch on the task)."""
    by_kind: dict[str, set[str]] = defaultdict(set)
    on_task: set[str] = set()
    for top in SCANNED:
        for path in sorted((root / top).rglob("*.py")):
            relative = path.relative_to(root).as_posix()
            kinds, task = switches(path.read_text(encoding="utf-8"))
            for kind in kinds:
                by_kind[kind].add(relative)
            if task:
                on_task.add(relative)
    return by_kind, on_task


def test_the_scanner_finds_each_form_of_switch() -> None:
    """The scan can fail: each form of switch in a made-up file is found."""
    assert switches("isinstance(card.input, ImageInput | TextInput)")[0] == {"image", "text"}
    assert switches("if card.input.kind == 'tabular': pass")[0] == {"tabular"}
    assert switches("ok = kind in ('raw-text', 'table')")[0] == {"raw-text", "table"}
    assert switches("METHODS[card.input.kind]")[0] == KIND_NAMES
    assert switches("KINDS[card.input.kind]")[0] == set()
    assert switches("T = {'image': 1, 'text': 2}")[0] == {"image", "text"}
    assert switches("x = log_format == 'text'") == (set(), False)  # not a kind
    assert switches("if card.is_classifier: pass")[1]
    assert switches("if card.task == 'regression': pass")[1]
    assert not switches("task = task_of(card)")[1]


def test_no_file_outside_app_kinds_switches_on_an_input_kind() -> None:
    by_kind, _ = scan(ROOT)
    outside = {
        kind: sorted(f for f in files if not f.startswith(KIND_HOME) and f not in KIND_ALLOWED)
        for kind, files in by_kind.items()
    }
    assert {k: v for k, v in outside.items() if v} == {}, (
        "these files switch on an input kind: move that knowledge into the kind's class in "
        "app/kinds/ (a method or attribute every kind answers)"
    )


def test_inside_app_kinds_only_the_table_and_the_kind_itself_name_a_kind() -> None:
    """Inside app/kinds too, a kind is named by the KINDS table and by its own module (which
    narrows the card's input section to its own type), nowhere else."""
    by_kind, _ = scan(ROOT)
    for kind, files in by_kind.items():
        inside = {f for f in files if f.startswith(KIND_HOME)}
        own = f"app/kinds/{kind.replace('-', '_')}.py"
        assert inside <= {"app/kinds/__init__.py", own}, (kind, sorted(inside))


def test_no_file_outside_app_tasks_switches_on_the_task() -> None:
    _, on_task = scan(ROOT)
    outside = sorted(
        f for f in on_task if not f.startswith(TASK_HOME + TASK_SCHEMA) and f not in TASK_ALLOWED
    )
    assert outside == [], (
        "these files switch on the task: ask the task plug-in (app.tasks.task_of(card))"
    )


def test_every_registered_kind_answers_everything() -> None:
    """A kind in the table implements every abstract part of `InputAdapter` (schema, tensor,
    rows, statistics, explainer, report sections) and words its explanation for the docs;
    its key is the card's `input.kind` it serves."""
    from app.kinds import KINDS

    assert set(KINDS) == KIND_NAMES
    for name, kind in KINDS.items():
        assert not inspect.isabstract(kind), (name, sorted(kind.__abstractmethods__))
        assert kind.explanation_method.strip(), name


def test_each_out_of_domain_check_of_a_kind_has_its_calibration() -> None:
    """Training calibrates the check a kind names (not the kind): every check a kind runs
    has a calibration, and every calibration belongs to some kind's check."""
    from app.kinds import KINDS
    from training.ood import CALIBRATIONS

    checks = {kind.out_of_domain_check for kind in KINDS.values()} - {None}
    assert checks == set(CALIBRATIONS)


def test_the_allow_lists_only_shrink() -> None:
    """An allow-listed file that no longer switches must leave the list."""
    by_kind, on_task = scan(ROOT)
    switching = set().union(*by_kind.values())
    assert sorted(set(KIND_ALLOWED) - switching) == []
    assert sorted(set(TASK_ALLOWED) - on_task) == []


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT
    by_kind, on_task = scan(root)
    for kind in sorted(KIND_NAMES):
        files = sorted(by_kind.get(kind, ()))
        in_app = [f for f in files if f.startswith("app/")]
        print(
            f"{kind:9} app/: {len(in_app)} files, app/+training/: {len(files)}: {', '.join(files)}"
        )
    print(f"task      app/+training/: {len(on_task)} files: {', '.join(sorted(on_task))}")
