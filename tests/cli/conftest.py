"""Tiny models and data for the CLI tests, made once per session, and an in-process `cli` runner."""

import collections

import keras
import numpy as np
import pytest

from kcompress.cli import main
from tests.helpers import bert_preprocessor, tiny_bert_classifier

Run = collections.namedtuple("Run", "code out err")

_WORDS = ["the", "movie", "was", "good", "bad", "great", "awful"]
TEXTS = ["the movie was good", "the movie was bad", "great movie", "awful", "the good the bad", "was it great"] * 3


@pytest.fixture
def cli(capsys):
    """``cli("export", "--mode=int8", ...)`` -> ``Run(code, out, err)``, in-process."""

    def run(*args):
        code = main(["kcompress", *map(str, args)])
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run


@pytest.fixture(scope="session")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="session")
def mlp_keras(workdir):
    """A Dense model on 16 features, 3 classes, saved as .keras."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)])
    path = str(workdir / "mlp.keras")
    model.save(path)
    return path


@pytest.fixture(scope="session")
def numeric_csv(workdir):
    """32 rows of 16 numeric features and a label."""
    rng = np.random.default_rng(0)
    path = workdir / "numeric.csv"
    header = ",".join([f"f{i}" for i in range(16)] + ["label"])
    rows = [",".join([f"{v:.4f}" for v in rng.normal(size=16)] + [str(i % 3)]) for i in range(32)]
    path.write_text("\n".join([header, *rows]) + "\n")
    return str(path)


@pytest.fixture(scope="session")
def text_csv(workdir):
    path = workdir / "texts.csv"
    path.write_text("text,label\n" + "".join(f"{t},{i % 2}\n" for i, t in enumerate(TEXTS)))
    return str(path)


@pytest.fixture(scope="session")
def bert_keras(workdir):
    """A one-layer keras-hub BertTextClassifier saved with its preprocessor (sequence length 8)."""
    model = tiny_bert_classifier(preprocessor=bert_preprocessor(_WORDS), layers=1, width=8, seed=1)
    path = str(workdir / "bert.keras")
    model.save(path)
    return path


@pytest.fixture(scope="session")
def mlp_tflite(workdir, mlp_keras, numeric_csv):
    """(float32 path, full-int8 path) of the MLP."""
    import tflite_export

    model = keras.models.load_model(mlp_keras)
    data = np.loadtxt(numeric_csv, delimiter=",", skiprows=1, usecols=range(16), dtype="float32")
    float_path = str(workdir / "mlp_float32.tflite")
    int8_path = str(workdir / "mlp_int8.tflite")
    tflite_export.convert(model, float_path)
    tflite_export.convert(model, int8_path, mode="int8", representative_data=data)
    return float_path, int8_path


@pytest.fixture(scope="session")
def not_tflite(workdir):
    path = workdir / "not_a_model.tflite"
    path.write_bytes(b"PK\x03\x04 this is a zip, not a flatbuffer")
    return str(path)
