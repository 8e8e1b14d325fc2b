"""`kcompress compress` on a Keras image classifier and a folder of images: prune -> QAT -> int8 -> verify -> report.

One end-to-end run (module fixture) on 3 classes of 8 MNIST digits and a
small CNN; the error tests replace `run_pipeline` by a failure, so every
check must come before it (exit 2, not 1).
"""

import contextlib
import io
import json
import os

import keras
import pytest

import kcompress.pipeline
from kcompress.cli import main
from tests.cli.clihelpers import assert_usage_error
from tests.pipeline.image_folders import small_cnn, write_digit_folder

_SETTINGS = {
    "test_size": 8,
    "teacher": {"epochs": 2, "learning_rate": 3e-3, "batch_size": 8},
    "prune": {"sparsity": 0.5, "epochs": 1, "learning_rate": 1e-3, "batch_size": 8},
    "qat": {"epochs": 1, "learning_rate": 1e-4, "batch_size": 8, "calibration_batches": 2},
    "export": {"runs": 3, "verify_samples": 8},
}


def _config(folder, **values):
    path = os.path.join(folder, "c.json")
    with open(path, "w") as f:
        json.dump({**_SETTINGS, **values}, f)
    return path


def _main(*args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["kcompress", *map(str, args)])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("images")
    digits = write_digit_folder(tmp / "digits")
    model = tmp / "cnn.keras"
    small_cnn().save(model)
    args = ("compress", "--model", model, "--data", digits, "--config", _config(tmp), "--out", tmp / "run")
    code, out, err = _main(*args)
    assert code == 0, err
    return tmp / "run", out, args


def test_run_folder_has_the_int8_tflite_and_the_report(run):
    folder, out, _ = run
    assert sorted(name for name in os.listdir(folder) if name[:2].isdigit()) == [
        "01_teacher",
        "02_prune",
        "03_qat",
        "04_export",
    ]
    assert "distill: skipped for images" in out and "training and 4 test images" in out
    assert (folder / "04_export" / "model_int8.tflite").is_file()
    assert (folder / "04_export" / "labels.txt").read_text().split() == ["0", "1", "2"]
    rows = json.loads((folder / "report.json").read_text())["rows"]
    assert [row["stage"] for row in rows] == ["teacher", "prune", "qat", "export"]
    export = rows[-1]
    assert export["full_integer"] and export["mode"] == "int8" and export["agreement_with_keras"] >= 0.75
    assert export["edgetpu_verdict"].startswith("ready")
    report = (folder / "report.md").read_text()
    assert "| prune |" in report and "`.tflite` vs Keras agreement: " in report
    assert f".tflite:    {folder / '04_export' / 'model_int8.tflite'}" in out


def test_a_second_run_resumes_every_stage(run):
    folder, _, args = run
    code, out, err = _main(*args)
    assert code == 0, err
    for stage in ("teacher", "prune", "qat"):
        assert f"] {stage}: done in an earlier run" in out
    assert "] export: done in an earlier run" in out


@pytest.fixture
def no_run(monkeypatch):
    """`run_pipeline` fails if called: every check under test must come before it."""

    def run_pipeline(*args, **kwargs):
        raise RuntimeError("run_pipeline was called")

    monkeypatch.setattr(kcompress.pipeline, "run_pipeline", run_pipeline)


def _folder(root, counts):
    root.mkdir()
    for name, count in counts.items():
        (root / name).mkdir()
        for i in range(count):
            (root / name / f"{i}.png").write_bytes(b"")
    return root


@pytest.mark.parametrize(
    "counts, fragments",
    [
        ({}, ["Expected a folder of images with one subfolder per class", "subfolders=0"]),
        ({"cat": 6}, ["Expected subfolders of at least 2 classes.", "classes=['cat']"]),
        (
            {"cat": 6, "dog": 3, "owl": 5},
            ["Expected at least 5 images in each class folder (4 to train on, 1 to test on).", "images={'dog': 3}"],
        ),
    ],
    ids=["no-subfolders", "one-class", "few-images"],
)
def test_bad_folders_are_one_line_exit_2(cli, tmp_path, no_run, counts, fragments):
    data = _folder(tmp_path / "photos", counts)
    (data / "notes.txt").write_text("not a class\n")
    model = tmp_path / "cnn.keras"
    small_cnn().save(model)
    run = cli("compress", "--model", model, "--data", data, "--config", _config(tmp_path), "--out", tmp_path / "run")
    assert_usage_error(run, f"--config {tmp_path / 'c.json'}: ", f"data='{data}'", *fragments)


def test_a_model_that_does_not_take_images_is_refused(cli, tmp_path, no_run):
    data = _folder(tmp_path / "photos", {"cat": 5, "dog": 5})
    model = tmp_path / "mlp.keras"
    keras.Sequential([keras.Input((16,)), keras.layers.Dense(2)]).save(model)
    run = cli("compress", "--model", model, "--data", data, "--config", _config(tmp_path), "--out", tmp_path / "run")
    expected = "Expected a model whose input is an image, shaped (batch, height, width, channels)"
    assert_usage_error(run, expected, "input_shape=(None, 16)")


def test_an_image_model_needs_one_output_per_class_folder(cli, tmp_path, no_run):
    data = _folder(tmp_path / "photos", {"cat": 5, "dog": 5})
    model = tmp_path / "cnn.keras"
    small_cnn(classes=3).save(model)
    run = cli("compress", "--model", model, "--data", data, "--config", _config(tmp_path), "--out", tmp_path / "run")
    assert_usage_error(run, f"Expected a model with 2 outputs (the labels in {data}). Received: model='{model}'")


def test_the_shipped_text_model_is_refused_for_images(cli, tmp_path, no_run):
    data = _folder(tmp_path / "photos", {"cat": 5, "dog": 5})
    run = cli("compress", "--data", data, "--config", _config(tmp_path), "--out", tmp_path / "run")
    assert_usage_error(run, "Expected a .keras image classifier as model for a folder of images", "model='minilm'")


def test_a_missing_folder_names_both_kinds_of_data(cli, tmp_path, no_run):
    missing = tmp_path / "photos"
    run = cli("compress", "--data", missing, "--config", _config(tmp_path), "--out", tmp_path / "run")
    expected = "Expected an existing CSV file of texts, or folder of images with one subfolder per class"
    assert_usage_error(run, expected, repr(str(missing)))
