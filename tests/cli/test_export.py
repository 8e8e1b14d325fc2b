"""`kcompress export`: modes, calibration CSVs, keras-hub text models, and its errors."""

import os
import zipfile

import keras
import pytest

from tests.cli.clihelpers import assert_usage_error
from tests.helpers import subclassed_mlp


def test_float32_without_calibration(cli, mlp_keras, tmp_path):
    out = tmp_path / "m.tflite"
    run = cli("export", "--model", mlp_keras, "--out", out)
    assert run.code == 0, run.err
    assert run.err == ""
    assert out.is_file()
    assert f"{out}: float32" in run.out
    assert "[1/2] loading" in run.out and "[2/2] converting to float32" in run.out
    assert "| op | count | input dtypes | output dtypes |" in run.out
    assert "| FULLY_CONNECTED | 2 | float32 | float32 |" in run.out
    assert "inputs:  " in run.out and "[1, 16]" in run.out
    assert f"TFLite model: {out.stat().st_size:,} bytes" in run.out


def test_int8_with_numeric_calibration_is_full_integer(cli, mlp_keras, numeric_csv, tmp_path):
    out = tmp_path / "m_int8.tflite"
    run = cli("export", "--model", mlp_keras, "--mode", "int8", "--calibration", numeric_csv, "--out", out)
    assert run.code == 0, run.err
    assert "int8" in run.out and "full integer" in run.out
    assert "calibrating on 32 rows" in run.out
    assert "| FULLY_CONNECTED | 2 | int8" in run.out
    assert "[4/4] comparing Keras and .tflite outputs" in run.out
    assert "Keras vs .tflite on 32 examples" in run.out


def test_subclassed_model_takes_its_input_shape_from_the_calibration_rows(cli, numeric_csv, tmp_path):
    """A registered subclassed model (no known inputs) after loading; tests.helpers registered its class."""
    model = tmp_path / "subclassed.keras"
    subclassed_mlp().save(model)
    out = tmp_path / "sub_int8.tflite"
    run = cli("export", "--model", model, "--mode", "int8", "--calibration", numeric_csv, "--out", out)
    assert run.code == 0, run.err
    assert "int8" in run.out and "full integer" in run.out and "[1, 16]" in run.out
    assert "Keras vs .tflite on 32 examples" in run.out
    assert_usage_error(
        cli("export", "--model", model, "--out", tmp_path / "sub.tflite"),
        "Expected --calibration=DATA.csv for a model without known inputs (a subclassed model)",
        "Received: model='subclassed_mlp' and no --calibration",
    )


def test_default_out_is_next_to_the_model(cli, mlp_keras, tmp_path):
    model = tmp_path / "copy.keras"
    model.write_bytes(open(mlp_keras, "rb").read())
    run = cli("export", f"--model={model}", "--mode=dynamic")
    assert run.code == 0, run.err
    assert (tmp_path / "copy_dynamic.tflite").is_file()


def test_text_model_float32_with_sequence_length(cli, bert_keras, tmp_path):
    out = tmp_path / "bert.tflite"
    run = cli("export", "--model", bert_keras, "--sequence-length", 6, "--out", out)
    assert run.code == 0, run.err
    assert "token_ids int32[1, 6]" in run.out and "padding_mask int32[1, 6]" in run.out


def test_text_model_int8_with_text_calibration(cli, bert_keras, text_csv, tmp_path):
    out = tmp_path / "bert_int8.tflite"
    args = ("export", "--model", bert_keras, "--mode=int8", "--calibration", text_csv, "--out", out)
    run = cli(*args, "--allow-float-ops")
    assert run.code == 0, run.err
    assert "token_ids int32[1, 8]" in run.out  # The preprocessor's own sequence length.
    assert "| FULLY_CONNECTED |" in run.out and "int8" in run.out
    assert "Keras vs .tflite on 18 examples" in run.out
    # Without --allow-float-ops the library refuses: one line, exit code 1, no file left behind.
    os.remove(out)
    run = cli(*args, "--noverify")
    assert_usage_error(run, "kcompress export: Expected a model that converts to full int8", code=1)
    assert not out.exists()


def test_text_model_int8_with_float_ops_for_cpus(cli, bert_keras, text_csv, tmp_path):
    out = tmp_path / "bert_cpu.tflite"
    args = ("export", "--model", bert_keras, "--mode=int8", "--calibration", text_csv, "--out", out)
    run = cli(*args, "--allow-float-ops", "--float_ops=SOFTMAX,GELU")
    assert run.code == 0, run.err
    assert "int8, float32 GELU x1, SOFTMAX x1" in run.out
    assert "Keras vs .tflite on 18 examples" in run.out


def test_float_ops_need_int8(cli, mlp_keras, tmp_path):
    run = cli("export", "--model", mlp_keras, "--float-ops=SOFTMAX", "--out", tmp_path / "m.tflite")
    assert_usage_error(run, "Expected --mode=int8 with --float-ops. Received: --mode=float32")
    assert not (tmp_path / "m.tflite").exists()


def test_bad_mode_is_one_line_exit_2(cli, mlp_keras):
    assert_usage_error(
        cli("export", "--model", mlp_keras, "--mode=int4"),
        "kcompress export: Expected --mode in ('float32', 'float16', 'dynamic', 'int8', 'int16x8')",
        "Received: --mode='int4'",
    )


@pytest.mark.parametrize(
    "args, fragments",
    [
        ((), ["Expected a value for --model"]),
        (("--model", "missing.keras"), ["--model to be an existing file", "missing.keras"]),
        (("--model",), ["Expected a value after --model"]),
        (("--model=m.keras", "--sequence-length=0"), ["--sequence-length to be an integer >= 1"]),
        (("--model=m.keras", "--calibration-steps=x"), ["--calibration-steps to be an integer >= 1"]),
        (("--model=m.keras", "--verify=maybe"), ["--verify to be true or false"]),
        (("--model=m.keras", "--mdoel=x"), ["Received: flag='--mdoel'", "did you mean --model"]),
        (("--model=m.keras", "extra"), ["Expected no positional argument", "['extra']"]),
        (
            ("--model=m.keras", "--mode=int8", "--float-ops=SOFTMAX,CONV_2D"),
            ["--float-ops as comma-separated names among ('GELU', 'MAXIMUM', 'RSQRT', 'SOFTMAX')", "'SOFTMAX,CONV_2D'"],
        ),
    ],
)
def test_bad_usage_is_one_line_exit_2(cli, args, fragments):
    assert_usage_error(cli("export", *args), *fragments)


def test_file_errors_exit_2(cli, mlp_keras, numeric_csv, text_csv, bert_keras, tmp_path, not_tflite):
    base = ("export", "--model", mlp_keras)
    assert_usage_error(cli(*base, "--calibration", tmp_path / "no.csv"), "--calibration to be an existing file")
    assert_usage_error(cli(*base, "--out", tmp_path / "no" / "m.tflite"), "--out in an existing directory")
    assert_usage_error(cli(*base, "--out", tmp_path), "--out to be a file path, not a directory")
    assert_usage_error(cli("export", "--model", not_tflite), "--model to be a .keras or .h5 file")
    assert_usage_error(cli(*base, "--mode=int16x8"), "Expected --calibration=DATA.csv for --mode=int16x8")
    assert_usage_error(cli(*base, "--mode=int8"), "Expected --calibration=DATA.csv for --mode=int8")
    expected = "Expected --model to be a Keras model file (a .keras zip archive). Received: --model="
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a zip")
    assert_usage_error(cli("export", "--model", broken), f"{expected}'{broken}', which is a text file of 9 bytes")
    zipped = tmp_path / "archive.keras"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("notes.txt", "no model here")
    assert_usage_error(cli("export", "--model", zipped), f"{expected}'{zipped}', which is a zip archive of")
    assert_usage_error(cli("export", "--model", zipped), "with no config.json")
    h5 = tmp_path / "junk.h5"
    h5.write_bytes(bytes(range(256)))
    assert_usage_error(
        cli("export", "--model", h5),
        f"Expected --model to be a Keras model file (an HDF5 .h5 file). Received: --model='{h5}', which is 256 "
        "bytes of another format",
    )
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert_usage_error(cli(*base, "--calibration", empty), "a CSV with a header row and data rows")
    assert_usage_error(cli(*base, "--calibration", text_csv), "numeric columns in --calibration", "column='text'")
    assert_usage_error(cli("export", "--model", bert_keras, "--calibration", numeric_csv), "a 'text' column")
    assert_usage_error(
        cli("export", "--model", bert_keras, "--sequence-length=9"), "--sequence-length <= 8", "max_sequence_length"
    )
    assert_usage_error(cli(*base, "--sequence-length=9"), "--sequence-length only for a model with inputs of variable")
    variable = tmp_path / "variable.keras"
    keras.Sequential([keras.Input((None,), dtype="int32"), keras.layers.Embedding(8, 2)]).save(variable)
    assert_usage_error(cli("export", "--model", variable), "Expected --sequence-length (or --calibration")
    narrow = tmp_path / "narrow.csv"
    narrow.write_text("a,b\n1,2\n")
    assert_usage_error(cli(*base, "--calibration", narrow), "16 numeric columns in --calibration", "columns=2")


def test_unexpected_error_is_one_line_exit_1(cli, mlp_keras, tmp_path, monkeypatch):
    import tflite_export

    def explode(*args, **kwargs):
        raise RuntimeError("converter exploded\nwith a long native dump")

    monkeypatch.setattr(tflite_export, "convert", explode)
    run = cli("export", "--model", mlp_keras, "--out", tmp_path / "m.tflite")
    assert_usage_error(run, "RuntimeError: converter exploded", "KCOMPRESS_DEBUG=1", code=1)


def test_interrupt_exits_130(cli, mlp_keras, tmp_path, monkeypatch):
    import tflite_export

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tflite_export, "convert", interrupt)
    assert_usage_error(cli("export", "--model", mlp_keras, "--out", tmp_path / "m.tflite"), "interrupted", code=130)


def test_modes_are_tflite_export_modes(cli):
    import tflite_export

    run = cli("export", "--help")
    assert f"One of: {', '.join(tflite_export.MODES)}." in " ".join(run.out.split())


def test_debug_env_shows_the_traceback(cli, mlp_keras, tmp_path, monkeypatch):
    import tflite_export

    def explode(*args, **kwargs):
        raise RuntimeError("converter exploded")

    monkeypatch.setattr(tflite_export, "convert", explode)
    monkeypatch.setenv("KCOMPRESS_DEBUG", "1")
    run = cli("export", "--model", mlp_keras, "--out", tmp_path / "m.tflite")
    assert run.code == 1
    assert "Traceback" in run.err and run.err.strip().splitlines()[-1] == (
        "kcompress export: RuntimeError: converter exploded"
    )
