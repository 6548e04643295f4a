"""The notebooks (docs/notebooks/): each ``.ipynb`` matches its jupytext ``.py`` and runs top to
bottom at its tiny size.

Each notebook's parameter cell (tagged ``parameters``) holds the Colab-size defaults; the next cell
switches to the tiny sizes when ``PURERL_NOTEBOOK_TINY=1``. The run here uses a fresh kernel (the
``python3`` kernel of this interpreter) in a temporary working directory with its own
``PURERL_CACHE`` (experts and datasets a notebook makes stay there), no persistent compilation
cache, and LLVM at -O0 (``--xla_backend_optimization_level=0``: the same programs, compiled about
twice as fast, which is what these seconds-long runs spend their time on). Any cell error fails the
test, with the cell and its traceback; so does a notebook that runs past its time budget.

Edit the ``.py`` (or the notebook in Jupyter with jupytext), then
``jupytext --sync docs/notebooks/*.py`` to rewrite the paired ``.ipynb``.
"""

from __future__ import annotations

import os
import pathlib
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "docs" / "notebooks"
NAMES = ("online_rl", "offline_rl", "imitation", "alignment")
# Wall-clock budget of one tiny run (kernel start, imports, compiles): several times what it takes
# on an idle 2-core machine, so that a loaded one passes too; a cell still running then fails.
BUDGET_S = 420

nbformat = pytest.importorskip("nbformat", reason="pip install -e '.[test]' (nbformat)")
jupytext = pytest.importorskip("jupytext", reason="pip install -e '.[test]' (jupytext)")


def _cells(nb) -> list[tuple[str, str, list[str]]]:
    return [(c.cell_type, c.source.strip(), sorted(c.metadata.get("tags", []))) for c in nb.cells]


def test_every_notebook_is_listed():
    found = {p.stem for p in NOTEBOOKS.glob("*.ipynb")} | {p.stem for p in NOTEBOOKS.glob("*.py")}
    assert found == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_ipynb_matches_its_py(name):
    """The ``.ipynb`` (what Colab opens) has the cells of the jupytext ``.py``, no outputs, and the
    first cells every notebook promises: a title, the Colab setup, the ``parameters`` cell."""
    ipynb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    paired = jupytext.read(NOTEBOOKS / f"{name}.py")
    assert _cells(ipynb) == _cells(paired), (
        f"{name}.ipynb differs from {name}.py: run `jupytext --sync docs/notebooks/{name}.py`"
    )
    assert ipynb.metadata["jupytext"]["formats"] == "ipynb,py:percent"
    for cell in ipynb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{name}: outputs committed"
    title, setup, params = ipynb.cells[:3]
    assert title.cell_type == "markdown" and title.source.startswith("# ")
    assert "Open in Colab" in title.source
    assert '"google.colab" in sys.modules' in setup.source and "jax.devices()" in setup.source
    assert "PURERL_REPO_URL" in setup.source
    assert params.metadata.get("tags") == ["parameters"]
    assert "TINY = False" in params.source
    assert 'os.environ.get("PURERL_NOTEBOOK_TINY") == "1"' in ipynb.cells[3].source


@pytest.mark.slow
@pytest.mark.notebooks
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_at_tiny_size(name, tmp_path, monkeypatch):
    nbclient = pytest.importorskip("nbclient", reason="pip install -e '.[test]' (nbclient)")
    pytest.importorskip("ipykernel", reason="pip install -e '.[test]' (ipykernel)")

    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    monkeypatch.setenv("PURERL_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("PURERL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PURERL_NO_COMPILATION_CACHE", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    flags = os.environ.get("XLA_FLAGS", "")
    monkeypatch.setenv("XLA_FLAGS", f"{flags} --xla_backend_optimization_level=0".strip())
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    start = time.monotonic()
    seconds = []
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            left = BUDGET_S - (time.monotonic() - start)
            if left <= 0:
                pytest.fail(f"{name}: past its {BUDGET_S} s budget before cell {index}")
            client.timeout = int(left) + 1
            cell_start = time.monotonic()
            client.execute_cell(cell, index)
            seconds.append(time.monotonic() - cell_start)
    wall = time.monotonic() - start
    slowest = sorted(range(len(seconds)), key=seconds.__getitem__, reverse=True)[:4]
    cells = ", ".join(f"cell {i}: {seconds[i]:.0f} s" for i in slowest)
    print(f"{name}: {wall:.0f} s at tiny size ({cells})")
