"""Every kind of `.keras` file kcompress writes loads after a bare ``import kcompress``.

The files are written here; they are loaded in a fresh process that imports
only kcompress, keras and numpy (in this process everything is imported
already, so a load here would pass whatever kcompress registers). One
process loads every kind, with ``safe_mode=True``, and reports as JSON.
"""

import importlib
import json
import os
import pkgutil
import subprocess
import sys

import keras
import numpy as np
import pytest

import kcompress
from kcompress import _registration, clustering, pruning, quantization, structured
from kcompress.distillation import Distiller
from tests.clustering.chelpers import named_mlp
from tests.distillation.conftest import bert, labels, tokens
from tests.helpers import bert_inputs, mlp, mobile_cnn, tiny_bert_classifier
from tests.structured.shelpers import inputs, tiny_classifier

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_LOADER = r"""
import json, os, sys
import kcompress
tensorflow_imported = "tensorflow" in sys.modules
import keras
import numpy as np
report = {"tensorflow_imported_by_kcompress": tensorflow_imported,
          "kcompress_modules_before_loading": sorted(m for m in sys.modules if m.startswith("kcompress."))}
folder = sys.argv[1]
for kind in sys.argv[2:]:
    try:
        model = keras.models.load_model(os.path.join(folder, kind + ".keras"), safe_mode=True)
        x = dict(np.load(os.path.join(folder, kind + "_x.npz")))
        y = keras.ops.convert_to_numpy(model(x.pop("__array__", x), training=False))
        expected = np.load(os.path.join(folder, kind + "_y.npy"))
        report[kind] = {"class": type(model).__name__, "max_diff": float(np.abs(y - expected).max())}
    except Exception as error:
        report[kind] = {"error": f"{type(error).__name__}: {error}"[:2000]}
print(json.dumps(report))
"""


def _fit_pruned(model, x, y):
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), run_eagerly=True)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[pruning.UpdatePruningStep()])
    return model


def _distiller():
    distiller = Distiller(bert(layers=2), bert(layers=1, width=8, seed=1), hidden="uniform", attention="last")
    distiller.compile(optimizer="adam", run_eagerly=True)  # One eager step: tracing one costs 10 s.
    distiller.fit(tokens(8), labels(8), batch_size=8, verbose=0)
    return distiller


def _kinds():
    """``{kind: (model, inputs)}``: tiny models in every form kcompress saves."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 16)).astype("float32"), rng.integers(0, 2, 8)
    ids = bert_inputs(4)
    schedule = pruning.ConstantSparsity(0.5, begin_step=0, frequency=1)
    qat_bert = quantization.quantize_model(tiny_bert_classifier())
    quantization.calibrate(qat_bert, ids)
    distiller = _distiller()
    pixels = rng.uniform(0, 255, (8, 8, 8, 3)).astype("float32")
    qat_cnn = quantization.quantize_model(mobile_cnn())
    quantization.calibrate(qat_cnn, pixels)
    return {
        "pruning": (_fit_pruned(pruning.prune_low_magnitude(mlp(), sparsity_schedule=schedule), x, y), x),
        "pruning_keras_hub": (pruning.prune_low_magnitude(tiny_bert_classifier(), sparsity_schedule=schedule), ids),
        "qat": (quantization.quantize_model(mlp()), x),
        "qat_calibrated_keras_hub": (qat_bert, ids),
        "qat_cnn_folded": (qat_cnn, pixels),
        "clustering": (clustering.cluster_weights(named_mlp(), number_of_clusters=4), x),
        "structured": (
            structured.prune_transformer(tiny_classifier(), heads=0.5, ffn=0.5, importance="magnitude", verbose=0),
            inputs(4)[0],
        ),
        "distiller": (distiller, tokens(4)),
        "distiller_student": (distiller.student, tokens(4)),
    }


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Writes ``<kind>.keras``, its inputs ``<kind>_x.npz`` and outputs ``<kind>_y.npy``; returns the folder
    and ``{kind: class name}``."""
    keras.utils.set_random_seed(0)
    folder = tmp_path_factory.mktemp("loading")
    classes = {}
    for kind, (model, x) in _kinds().items():
        model.save(str(folder / f"{kind}.keras"))
        np.savez(folder / f"{kind}_x.npz", **(x if isinstance(x, dict) else {"__array__": x}))
        np.save(folder / f"{kind}_y.npy", keras.ops.convert_to_numpy(model(x, training=False)))
        classes[kind] = type(model).__name__
    return folder, classes


def _fresh_env():
    return dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), TF_CPP_MIN_LOG_LEVEL="3")


@pytest.fixture(scope="module")
def loaded(saved, tmp_path_factory):
    """The fresh process' JSON report on loading every kind."""
    folder, classes = saved
    command = [sys.executable, "-c", _LOADER, str(folder), *classes]
    cwd = tmp_path_factory.mktemp("fresh")  # Not the repository: only the installed/PYTHONPATH kcompress.
    done = subprocess.run(command, capture_output=True, text=True, env=_fresh_env(), cwd=cwd, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


KINDS = (
    "pruning",
    "pruning_keras_hub",
    "qat",
    "qat_calibrated_keras_hub",
    "clustering",
    "structured",
    "distiller",
    "distiller_student",
)


def test_fresh_process_imported_only_kcompress(loaded):
    assert not loaded["tensorflow_imported_by_kcompress"], "`import kcompress` imported TensorFlow"
    assert loaded["kcompress_modules_before_loading"] == ["kcompress._registration"], (
        "the load test would pass on what a submodule registers"
    )


@pytest.mark.parametrize("kind", KINDS)
def test_loads_after_import_kcompress_alone(saved, loaded, kind):
    _, classes = saved
    result = loaded[kind]
    assert "error" not in result, f"{kind}: keras.models.load_model(safe_mode=True) failed: {result.get('error')}"
    assert result["class"] == classes[kind], f"{kind}: loaded a {result['class']}, saved a {classes[kind]}"
    assert result["max_diff"] <= 1e-5, f"{kind}: outputs differ from the saved model's by {result['max_diff']}"


def test_loads_when_a_subpackage_is_imported_first(saved, tmp_path):
    """The risky order: keras is first imported from inside a half-imported kcompress subpackage."""
    folder, classes = saved
    kinds = ["pruning_keras_hub", "clustering", "distiller"]  # Classes of other subpackages than the first.
    loader = _LOADER.replace("import kcompress\n", "import kcompress.quantization\n", 1)
    command = [sys.executable, "-c", loader, str(folder), *kinds]
    done = subprocess.run(command, capture_output=True, text=True, env=_fresh_env(), cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    for kind in kinds:
        assert report[kind].get("class") == classes[kind], f"{kind}: {report[kind]}"


def test_cli_exports_an_unstripped_pruned_model(saved, tmp_path):
    folder, _ = saved
    out = tmp_path / "pruned.tflite"
    command = [sys.executable, "-m", "kcompress.cli", "export", "--model", str(folder / "pruning.keras")]
    done = subprocess.run(
        [*command, "--mode", "dynamic", "--out", str(out)],
        capture_output=True,
        text=True,
        env=_fresh_env(),
        cwd=tmp_path,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert out.is_file() and f"{out}: dynamic" in done.stdout


def test_table_lists_every_registered_class():
    """`_registration.SERIALIZABLES` names each registered kcompress class and the module registering it."""
    for module in pkgutil.walk_packages(kcompress.__path__, "kcompress."):
        importlib.import_module(module.name)
    registry = keras.saving.get_custom_objects()
    registered = {
        name: obj.__module__
        for name, obj in registry.items()
        if name.startswith("kcompress>") and not isinstance(obj, _registration._Deferred)
    }
    assert registered == _registration.SERIALIZABLES
