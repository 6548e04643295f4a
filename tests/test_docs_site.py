"""The documentation site (mkdocs.yml, docs/): it builds with ``mkdocs build --strict``, the commands
it shows are valid, and its build-time helpers (docs/hooks/) do what they say.

The strict build fails on a broken link, an unknown cross-reference (the landing page's
paper -> module -> function table names every object as a cross-reference, so a renamed function
fails here) and a docstring that documents a parameter its function does not have. It needs the
``docs`` extra (part of ``test``); without mkdocs those tests skip and say why.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import re
import shlex
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
HOOKS = DOCS / "hooks"
FENCE = re.compile(r"```bash\n(.*?)```", re.DOTALL)
PACKAGES = (
    "core",
    "agents",
    "loops",
    "envs",
    "datasets",
    "imitation",
    "alignment",
    "experts",
    "stats",
)

_DOCS_TOOLS = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python", "griffe")
_MISSING = [m for m in _DOCS_TOOLS if importlib.util.find_spec(m.split(".")[0]) is None]
needs_docs_tools = pytest.mark.skipif(
    bool(_MISSING),
    reason=f"the docs tools are not installed ({', '.join(_MISSING)}): pip install -e '.[docs]'",
)


def _load_hook(name: str):
    spec = importlib.util.spec_from_file_location(f"_docs_hook_{name}", HOOKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------------
# The commands the site shows.


def test_landing_page_has_readme_commands_verbatim():
    """README's two leading commands (quickstart, tests) appear unchanged on the landing page."""
    readme = FENCE.findall((ROOT / "README.md").read_text())
    index = (DOCS / "index.md").read_text()
    assert len(readme) >= 2
    for command in readme[:2]:
        assert f"```bash\n{command}```" in index, (
            f"docs/index.md lacks README's command {command!r}"
        )


def _purerl_commands(text: str) -> list[list[str]]:
    """Every ``purerl ...`` invocation in the bash blocks of ``text``, as argv lists."""
    out = []
    for block in FENCE.findall(text):
        for line in block.splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                if words and words[0].split("/")[-1] == "purerl":
                    out.append(words[1:])
    return out


def test_every_purerl_command_in_the_docs_parses():
    """Each ``purerl`` command in docs/ and README.md parses with the real argument parser and
    names a registered agent (no training runs)."""
    from purerl import agents, cli

    pages = sorted(DOCS.rglob("*.md")) + [ROOT / "README.md"]
    checked = 0
    for page in pages:
        for argv in _purerl_commands(page.read_text()):
            try:
                args = cli.build_parser().parse_args(argv)
            except cli.UsageError as e:
                pytest.fail(f"{page.relative_to(ROOT)}: purerl {shlex.join(argv)}: {e}")
            if getattr(args, "agent", None) is not None:
                assert args.agent in agents.REGISTRY, (page, argv)
            checked += 1
    assert checked >= 10  # the quickstart, getting started, datasets, ...


# ---------------------------------------------------------------------------------------------------
# The build-time helpers.


@needs_docs_tools
def test_hook_rewrites_github_only_markdown():
    hook = _load_hook("benchmarks_pages")
    src = "\n".join(
        [
            "Intro line:",
            "- item",
            "  - nested by 2",
            "1. first",
            "   * nested by 3",
            "",
            "   more of the first item",
            "",
            "| eq | fn |",
            "|---|---|",
            "| `pi(a\\|s)` and \\| | `f` |",
        ]
    )
    out = hook.gfm_to_python_markdown(src).split("\n")
    assert out[:3] == ["Intro line:", "", "- item"]  # blank line before the list
    assert "    - nested by 2" in out
    assert "    * nested by 3" in out
    assert "    more of the first item" in out
    assert "| `pi(a|s)` and \\| | `f` |" in out  # inside code only


@needs_docs_tools
def test_griffe_extension_rewrites_roles_and_checks_args(tmp_path, caplog):
    import griffe

    (tmp_path / "pk").mkdir()
    (tmp_path / "pk" / "__init__.py").write_text(
        '"""See :func:`f`, :class:`~pk.C` and :func:`numpy.argmax`."""\n\n'
        "def f(a, b):\n"
        '    """F.\n\n    Args:\n      a, b: the two ends.\n      c: not a parameter.\n    """\n\n'
        "class C:\n"
        '    """C."""\n'
    )
    extension = _load_hook("griffe_rst_roles").RstRoles()
    with caplog.at_level("WARNING"):
        pkg = griffe.load(
            "pk", search_paths=[str(tmp_path)], extensions=griffe.load_extensions(extension)
        )
    text = pkg.docstring.value
    assert '<autoref identifier="pk.f" optional><code>f</code></autoref>' in text
    assert '<autoref identifier="pk.C" optional><code>C</code></autoref>' in text
    assert "`numpy.argmax`" in text  # outside purerl: plain code
    warnings = [r.getMessage() for r in caplog.records]
    assert any("'c' is not in the signature of pk.f" in w for w in warnings), warnings
    assert not any("'a'" in w or "'b'" in w for w in warnings), warnings


# ---------------------------------------------------------------------------------------------------
# The build.


@needs_docs_tools
@pytest.mark.slow
def test_mkdocs_build_strict(tmp_path):
    """``mkdocs build --strict`` passes and the site holds what it should."""
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    seconds = time.perf_counter() - start
    log = result.stdout + result.stderr
    assert result.returncode == 0, (
        f"mkdocs build --strict failed after {seconds:.0f} s:\n{log[-6000:]}"
    )
    assert "WARNING" not in log, log[-6000:]

    for page in ("index.html", "getting-started/index.html", "agents/td3/index.html"):
        assert (site / page).is_file(), page
    # The notebooks as pages (mkdocs-jupyter, not executed), each with its .ipynb to download.
    for notebook in (ROOT / "docs" / "notebooks").glob("*.ipynb"):
        page = site / "notebooks" / notebook.stem
        assert (page / "index.html").is_file() and (page / notebook.name).is_file(), notebook.name
    for package in PACKAGES:
        html = (site / "api" / package / "index.html").read_text()
        assert f'id="purerl.{package}' in html, package  # objects rendered from the docstrings
    # Equations: arithmatex marks them, the local MathJax (no CDN) typesets them.
    td3 = (site / "agents/td3/index.html").read_text()
    assert 'class="arithmatex"' in td3 and "javascripts/mathjax/tex-chtml.js" in td3
    assert (site / "javascripts/mathjax/tex-chtml.js").is_file()
    assert "cdn.jsdelivr" not in td3 and "fonts.googleapis" not in td3
    # Benchmarks: every results page and every plot, read from benchmarks/results at build time.
    results = ROOT / "benchmarks" / "results"
    for md in results.glob("*.md"):
        assert (site / "benchmarks/results" / md.stem / "index.html").is_file(), md.name
    for png in results.rglob("*.png"):
        assert (site / png.relative_to(ROOT)).is_file(), png
    # Every image of every page resolves to a file of the site.
    images = 0
    for html in site.rglob("*.html"):
        for src in re.findall(r'<img[^>]* src="([^"]+)"', html.read_text()):
            if not src.startswith(("http:", "https:", "data:")):
                assert (html.parent / src).resolve().is_file(), (html.relative_to(site), src)
                images += 1
    assert images >= len(list(results.rglob("*.png")))
