"""Every notebook in ``notebooks/`` runs top to bottom on its small setting, and what it records holds up.

Each notebook is executed once, on a copy in a temporary directory (its figures and records land there, not
in the checkout), by nbclient with the ``python3`` kernel of this interpreter; a cell that raises fails the
test with the cell and its traceback. The storage-modes notebook's record is then checked against exact
byte counts, which do not depend on timing.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import nbclient
import nbformat
import pytest

from embedcache.data.conll import read_column_file
from tests.conftest import REPO_ROOT

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT_S = 600
pytestmark = [pytest.mark.notebook, pytest.mark.slow]

ExecutedNotebook = tuple[nbformat.NotebookNode, Path]  # the executed notebook, the directory it ran in
Execute = Callable[[str], ExecutedNotebook]


@pytest.fixture(scope="module")
def execute(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[Execute]:
    """``execute(name)``: run ``notebooks/<name>`` once on a temporary copy (later calls reuse the run)."""

    @cache
    def run(name: str) -> ExecutedNotebook:
        workdir = tmp_path_factory.mktemp(Path(name).stem)
        copy = workdir / name
        shutil.copy(REPO_ROOT / "notebooks" / name, copy)
        notebook = nbformat.read(copy, as_version=4)
        client = nbclient.NotebookClient(
            notebook,
            kernel_name="python3",  # ipykernel's own spec: this interpreter, so this venv
            timeout=CELL_TIMEOUT_S,
            resources={"metadata": {"path": str(workdir)}},
        )
        with pytest.MonkeyPatch.context() as patch:  # the kernel inherits this process's environment
            patch.setenv("EMBEDCACHE_NOTEBOOK_SIZE", "small")
            patch.setenv("EMBEDCACHE_DATA", str(data_dir))
            patch.setenv("OMP_NUM_THREADS", "1")
            client.execute()
        return notebook, workdir

    yield run


def outputs_of(notebook: nbformat.NotebookNode, output_type: str) -> list[dict[str, Any]]:
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    return [output for cell in code_cells for output in cell.outputs if output.output_type == output_type]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(execute: Execute, path: Path):
    notebook, _ = execute(path.name)  # nbclient raises CellExecutionError on the first failing cell
    assert not outputs_of(notebook, "error")
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code_cells), "a code cell was skipped"


def test_storage_modes_records_exact_bytes(execute: Execute, data_dir: Path):
    notebook, workdir = execute("storage_modes.ipynb")
    record = json.loads((workdir / "figures" / "storage_modes_small.json").read_text(encoding="utf-8"))
    n_train = record["setting"]["n_train"]
    train = list(read_column_file(data_dir / "wnut17" / "train.conll"))[:n_train]
    n_tokens, dim = sum(len(s) for s in train), record["dim"]
    assert record["n_train_tokens"] == n_tokens
    assert dim == 2 * record["setting"]["lm_hidden"]  # forward + backward LM

    embed = record["embed"]
    for mode in ("cpu", "gpu"):
        assert embed["embedcache"][mode]["retained_bytes"] == n_tokens * dim * 4
        # Flair 0.15.1 keeps views of whole LM states: more than the vectors, on a CPU device in both modes
        assert embed["flair"][mode]["retained_bytes"] > n_tokens * dim * 4
    for library in ("embedcache", "flair"):
        assert embed[library]["none"]["retained_bytes"] == 0
        curve = embed[library]["gpu"]["retained_bytes_after_batch"]
        assert len(curve) == -(-n_train // record["setting"]["batch_size"])
        assert curve == sorted(curve) and curve[-1] == embed[library]["gpu"]["retained_bytes"]

    itemsizes = {"cpu": 4, "gpu": 4, "disk": 4, "gpu fp16": 2, "gpu bf16": 2}
    for name, itemsize in itemsizes.items():
        assert record["cache"][name]["nbytes"] == (n_tokens + 1) * dim * itemsize  # + the zero padding row

    assert set(record["train"]["embedcache"]) == set(itemsizes) | {"none"}
    assert set(record["train"]["flair"]) == {"none", "cpu", "gpu"}
    assert all(len(run["epoch_seconds"]) == 2 for lib in record["train"].values() for run in lib.values())

    figures = sorted(p.name for p in (workdir / "figures").glob("*.png"))
    assert figures == [f"storage_modes_small_{kind}.png" for kind in ("memory", "retained", "time")]
    images = [o for o in outputs_of(notebook, "display_data") if "image/png" in o.get("data", {})]
    assert len(images) == len(figures)
