"""`kcompress compress` with the real pipeline: the class count comes from the data, bad data is one line, exit 2.

Every check runs before a model is built: the error tests replace
`run_pipeline` by a failure, so reaching it would be exit 1, not 2.
"""

import json
import pathlib

import pytest

import kcompress.pipeline
from kcompress.pipeline import stages
from tests.cli.clihelpers import assert_usage_error
from tests.helpers import bert_preprocessor, tiny_bert_classifier

_WORDS = ["a", "the", "film", "plot", "good", "bad", "fine", "dull", "fun", "long", "odd", "sad"]
_LABELS = ["joy", "anger", "fear", "sadness", "surprise", "disgust", "trust", "calm"]
_TINY = {
    "train_size": 64,
    "test_size": 16,
    "sequence_length": 8,
    "teacher": {"epochs": 1, "learning_rate": 1e-3, "batch_size": 16},
    "distill": {"student_layers": 1, "epochs": 1, "learning_rate": 1e-3, "batch_size": 16},
    "prune": {"sparsity": 0.5, "epochs": 1, "learning_rate": 1e-3, "batch_size": 16},
    "qat": {"epochs": 1, "learning_rate": 1e-4, "batch_size": 16, "calibration_batches": 1},
    "export": {"runs": 3, "verify_samples": 8},
}


def _tiny_classifier(num_classes, sequence_length=8):
    """A one-layer keras-hub BERT text classifier with its preprocessor (a stand-in for MiniLM)."""
    preprocessor = bert_preprocessor(_WORDS, seq_len=sequence_length)
    return tiny_bert_classifier(sequence_length, preprocessor=preprocessor, num_classes=num_classes, layers=1)


def _csv(path, rows):
    path.write_bytes(b"text,label\n" + b"".join(f"{text},{label}\n".encode() for text, label in rows))
    return path


def _eight_classes(path, per_class=8):
    rows = [
        (f"a {_WORDS[2 + i]} {_WORDS[(i + j) % 12]}", label)
        for j in range(per_class)
        for i, label in enumerate(_LABELS)
    ]
    return _csv(path, rows)


def _config(tmp_path, data, **values):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"data": str(data), **_TINY, **values}))
    return path


@pytest.fixture
def no_run(monkeypatch):
    """`run_pipeline` fails if called: every check under test must come before it."""

    def run_pipeline(*args, **kwargs):
        raise RuntimeError("run_pipeline was called")

    monkeypatch.setattr(kcompress.pipeline, "run_pipeline", run_pipeline)


def test_eight_labels_make_an_eight_class_minilm(cli, tmp_path, monkeypatch):
    built = []

    def fake_minilm(num_classes=2, sequence_length=48):
        built.append(num_classes)
        return _tiny_classifier(num_classes, sequence_length)

    monkeypatch.setattr(stages, "load_minilm_classifier", fake_minilm)
    # The head is built in the teacher stage, labels.txt written by the export: the stages between add only time.
    skip = {"skip": True}
    export = {"mode": "dynamic", "runs": 3, "verify_samples": 8}
    data = _eight_classes(tmp_path / "emotions.csv")
    config = _config(tmp_path, data, distill=skip, prune=skip, qat=skip, export=export)
    run = cli("compress", "--config", config, "--out", tmp_path / "run")
    assert run.code == 0, run.err
    assert built == [8]
    tflite = next(line.split()[-1] for line in run.out.splitlines() if line.startswith(".tflite:"))
    labels = (pathlib.Path(tflite).parent / "labels.txt").read_text().split("\n")
    assert labels == [*sorted(_LABELS), ""]
    assert "report.md" in run.out


def test_explicit_num_classes_must_match_the_data(cli, tmp_path, no_run):
    data = _eight_classes(tmp_path / "emotions.csv")
    assert_usage_error(
        cli("compress", "--config", _config(tmp_path, data, num_classes=2), "--out", tmp_path / "run"),
        f"kcompress compress: --config {tmp_path / 'c.json'}: Expected num_classes=8 (the labels in {data}). "
        "Received: num_classes=2",
    )


def test_a_saved_model_must_have_one_output_per_label(cli, tmp_path, no_run):
    model = tmp_path / "two.keras"
    _tiny_classifier(2).save(model)
    data = _eight_classes(tmp_path / "emotions.csv")
    assert_usage_error(
        cli("compress", "--model", model, "--config", _config(tmp_path, data), "--out", tmp_path / "run"),
        f"Expected a model with 8 outputs (the labels in {data}). Received: model='{model}', outputs=2",
    )


def test_a_saved_model_with_other_outputs_is_refused_after_loading(tmp_path):
    """The Python API checks the loaded model (the CLI reads num_classes from the file before)."""
    model = tmp_path / "two.keras"
    _tiny_classifier(2).save(model)
    data = _eight_classes(tmp_path / "emotions.csv")
    config = kcompress.pipeline.PipelineConfig.from_dict({**_TINY, "data": str(data), "model": str(model)})
    with pytest.raises(ValueError, match=r"Expected a model with 8 outputs .* outputs=2"):
        kcompress.pipeline.run_pipeline(config, tmp_path / "run", verbose=0)


@pytest.mark.parametrize(
    "content, fragments",
    [
        (b"text,label\ngood,pos\na bad film,\nfine,neg\n", ["Expected a label on every row.", "line=3, label=''"]),
        (b"text,label\na good film,pos\nno label here\n", ["Expected a label on every row.", "line=3"]),
        (
            b"text,label\ngood,pos\nbad,neg\n",
            ["Expected at least 5 rows of each label (4 to train on, 1 to test on).", "rows={'neg': 1, 'pos': 1}"],
        ),
        (
            b"text,label\n" + b"good,pos\n" * 9 + b"bad,neg\n" * 3,
            ["Expected at least 5 rows of each label", "rows={'neg': 3}"],
        ),
        (b"text,label\n" + b"good,pos\n" * 9, ["Expected labels of at least 2 classes.", "labels=['pos']"]),
        (b"text,label\n" + b"good,0\n" * 5 + b"bad,2\n" * 5, ["at least 5 rows of each label", "rows={'1': 0}"]),
        (
            b"text,label\ngood,pos\nd\xe9j\xe0 vu,neg\n",
            ["Expected a UTF-8 text file.", "line=3, byte='0xe9'"],
        ),
        (b"text,label\n", ["Expected rows of texts and labels under the header.", "rows=0"]),
        (b"sentence,y\nhello,1\n", ["a CSV file with 'text' and 'label' columns", "columns=['sentence', 'y']"]),
    ],
    ids=["empty-label", "short-row", "two-rows", "few-of-one", "one-class", "integer-gap", "latin-1", "header", "cols"],
)
def test_bad_data_is_one_line_exit_2(cli, tmp_path, no_run, content, fragments):
    data = tmp_path / "data.csv"
    data.write_bytes(content)
    run = cli("compress", "--config", _config(tmp_path, data), "--out", tmp_path / "run")
    assert_usage_error(run, f"kcompress compress: --config {tmp_path / 'c.json'}: ", f"data='{data}'", *fragments)


def test_missing_data_and_model_files_exit_2(cli, tmp_path, no_run):
    out = ("--out", tmp_path / "run")
    missing = tmp_path / "none.csv"
    run = cli("compress", "--config", _config(tmp_path, missing), *out)
    assert_usage_error(run, "Expected an existing CSV file", repr(str(missing)))
    junk = tmp_path / "junk.keras"
    junk.write_text("not a model\n")
    data = _eight_classes(tmp_path / "emotions.csv")
    assert_usage_error(
        cli("compress", "--model", junk, "--config", _config(tmp_path, data), *out),
        f"Expected --model to be a Keras model file (a .keras zip archive). Received: --model='{junk}', "
        "which is a text file of 12 bytes",
    )
    assert_usage_error(
        cli("compress", "--config", _config(tmp_path, data, model=str(junk)), *out),
        "Expected model to be a Keras model file (a .keras zip archive)",
        "which is a text file of 12 bytes",
    )
