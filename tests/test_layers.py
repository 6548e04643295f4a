"""The import graph flows one way (docs/design.md, "Layout"): a module never imports a higher one,
not even lazily inside a function, because a lazy import is a hidden cycle.

Two checks: a static one over the source (every ``import`` / ``from ... import`` anywhere in a
module, ast-parsed, so function-level imports count), and a runtime one (a fresh interpreter imports
a package and lists what came with it). To add a rule, append to :data:`FORBIDDEN` (static) or
:data:`RUNTIME` (runtime); a rule names modules by dotted prefix.
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "purerl"

# (modules the rule applies to, modules they must not import, why). Prefixes: "purerl.core" covers
# purerl/core/*.py; "purerl.experts" covers purerl/experts.py (or a future purerl/experts/).
FORBIDDEN: list[tuple[str, tuple[str, ...], str]] = [
    (
        "purerl.core",
        (
            "purerl.datasets",
            "purerl.envs",
            "purerl.agents",
            "purerl.imitation",
            "purerl.energy",
            "purerl.alignment",
            "purerl.loops",
            "purerl.experts",
            "purerl.cli",
        ),
        "core is the bottom layer: it imports nothing else from purerl",
    ),
    (
        "purerl.datasets",
        ("purerl.agents", "purerl.alignment", "purerl.loops", "purerl.experts", "purerl.cli"),
        "datasets sit below agents and loops (the offline loop reads them); experts train above",
    ),
    (
        "purerl.datasets.schema",
        ("purerl.datasets.registry", "purerl.envs", "purerl.agents"),
        "the schema is plain data checks over core types",
    ),
    (
        "purerl.datasets.io",
        ("purerl.datasets.registry", "purerl.envs", "purerl.agents"),
        "file I/O needs only the schema",
    ),
    (
        "purerl.envs",
        ("purerl.agents", "purerl.loops", "purerl.experts", "purerl.cli"),
        "envs sit below agents and loops",
    ),
    (
        "purerl.agents",
        ("purerl.loops", "purerl.experts", "purerl.cli"),
        "an agent is four pure functions; loops drive it",
    ),
    (
        "purerl.imitation",
        ("purerl.loops", "purerl.experts", "purerl.cli"),
        "rewarders are pure functions that loops, wrappers and relabel drive",
    ),
    *(
        (
            f"purerl.alignment.{name}",
            ("purerl.loops", "purerl.experts", "purerl.cli", "purerl.alignment.pipeline"),
            "alignment methods sit below loops; the pipeline (above loops) wires them to the loop",
        )
        for name in (
            "lm",
            "tasks",
            "pretrain",
            "reward_model",
            "warm",
            "policy_gradient",
            "warp",
            "best_of_n",
            "bond",
        )
    ),
    ("purerl.loops", ("purerl.experts", "purerl.cli"), "loops sit below experts and the CLI"),
    ("purerl.experts", ("purerl.cli",), "the CLI is the top"),
    (
        "purerl.stats",
        (
            "jax",
            *(
                f"purerl.{name}"
                for name in (
                    "core",
                    "datasets",
                    "envs",
                    "agents",
                    "imitation",
                    "energy",
                    "alignment",
                    "loops",
                    "experts",
                    "cli",
                )
            ),
        ),
        "aggregate metrics over runs x tasks are numpy only: any layer or script may use them",
    ),
]

# (package imported alone in a fresh interpreter, module prefixes that must not come with it).
RUNTIME: list[tuple[str, tuple[str, ...]]] = [
    ("purerl.datasets", ("purerl.loops", "purerl.experts", "purerl.cli", "purerl.agents")),
    ("purerl.core", ("purerl.datasets", "purerl.envs", "purerl.agents", "purerl.loops")),
    ("purerl.loops", ("purerl.experts", "purerl.cli")),
    ("purerl.alignment", ("purerl.loops", "purerl.experts", "purerl.cli")),
    ("purerl.imitation", ("purerl.loops", "purerl.experts", "purerl.cli")),
    ("purerl.stats", ("jax", "purerl.core", "purerl.loops", "purerl.envs")),
]


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: pathlib.Path, module: str) -> list[tuple[int, str]]:
    """``(line, dotted name)`` of every import in the file, at any depth; relative imports are
    resolved against ``module``, and ``from a import b`` yields ``a.b`` (b may be a submodule)."""
    is_package = path.name == "__init__.py"
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            out += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return out


def _matches(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _violations(rules=None) -> list[str]:
    rules = FORBIDDEN if rules is None else rules
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        for scope, banned, why in rules:
            if not _matches(module, scope):
                continue
            for line, name in _imports(path, module):
                hit = next((b for b in banned if _matches(name, b)), None)
                if hit is not None:
                    rel = path.relative_to(ROOT)
                    found.append(
                        f"{rel}:{line} imports {name} ({scope} must not import {hit}: {why})"
                    )
    return found


def test_no_module_imports_a_higher_layer():
    assert _violations() == []


def test_the_static_check_sees_lazy_and_relative_imports(tmp_path, monkeypatch):
    """The checker itself: a function-level import and a relative import are both caught."""
    pkg = tmp_path / "purerl" / "datasets"
    pkg.mkdir(parents=True)
    (tmp_path / "purerl" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("from . import bad\n")
    (pkg / "bad.py").write_text(
        "def f():\n    from purerl.loops import offline\n    return offline\n"
        "from ..experts import train_expert\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path / "purerl")
    found = _violations()
    assert any("bad.py:2 imports purerl.loops.offline" in v for v in found), found
    assert any("bad.py:4 imports purerl.experts.train_expert" in v for v in found), found
    assert len(found) == 2, found


@pytest.mark.parametrize(("package", "banned"), RUNTIME, ids=[r[0] for r in RUNTIME])
def test_importing_a_package_does_not_import_higher_layers(package, banned):
    code = (
        f"import sys, {package}\n"
        f"bad = sorted(m for m in sys.modules if m.startswith({banned!r}))\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
