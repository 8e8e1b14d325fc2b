"""`kcompress inspect` and `kcompress bench` on tiny `.tflite` files."""

import pytest

from tests.cli.clihelpers import assert_usage_error


def test_inspect_float_model(cli, mlp_tflite):
    path, _ = mlp_tflite
    run = cli("inspect", path)
    assert run.code == 0 and run.err == ""
    assert "TFLite model:" in run.out and "bytes" in run.out
    assert "inputs:  " in run.out and "outputs: " in run.out
    assert "| op | count | input dtypes | output dtypes |" in run.out
    assert "Edge TPU: not ready: tensors are float32" in run.out


def test_inspect_int8_model_with_edgetpu_ops(cli, mlp_tflite):
    _, path = mlp_tflite
    run = cli("inspect", path, "--edgetpu-ops")
    assert run.code == 0
    assert "full integer" in run.out
    assert "Edge TPU: " in run.out
    assert "| # | op | runs on | problems |" in run.out


def test_bench_prints_median_and_p90(cli, mlp_tflite):
    path, _ = mlp_tflite
    run = cli("bench", path, "--runs", 5, "--threads", 1, "--warmup=0")
    assert run.code == 0 and run.err == ""
    assert "timing 5 runs" in run.out
    result = run.out.strip().splitlines()[-1]
    assert result.startswith(f"{path}: median ") and " ms, p90 " in result and "(5 runs, 1 threads)" in result


@pytest.mark.parametrize("command", ["inspect", "bench"])
def test_file_errors_exit_2(cli, command, tmp_path, not_tflite, mlp_keras):
    assert_usage_error(cli(command), "Expected the argument MODEL.tflite", "arguments=[]")
    assert_usage_error(cli(command, "a.tflite", "b.tflite"), "arguments=['a.tflite', 'b.tflite']")
    assert_usage_error(cli(command, tmp_path / "none.tflite"), "path to be an existing file")
    assert_usage_error(cli(command, tmp_path), "path to be a file, not a directory")
    expected = "Expected path to be a .tflite model (a TFLite flatbuffer). Received: path="
    assert_usage_error(cli(command, not_tflite), f"{expected}'{not_tflite}', which is 36 bytes of another format")
    assert_usage_error(cli(command, mlp_keras), "which is a zip archive of", "with a config.json (a .keras model?)")


@pytest.mark.parametrize("command", ["inspect", "bench"])
def test_unreadable_tflite_says_what_it_is(cli, command, tmp_path, mlp_tflite):
    expected = "Expected path to be a .tflite model (a TFLite flatbuffer). Received: path="
    with open(mlp_tflite[0], "rb") as f:
        head = f.read(600)  # The TFL3 identifier stays: only reading the flatbuffer finds the cut.
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(head)
    run = cli(command, cut)
    assert_usage_error(
        run, f"{expected}'{cut}', which is a TFLite flatbuffer of 600 bytes that is cut short or damaged"
    )
    junk = tmp_path / "junk.tflite"
    junk.write_text("hello, world\n")
    assert_usage_error(cli(command, junk), f"{expected}'{junk}', which is a text file of 13 bytes")
    empty = tmp_path / "empty.tflite"
    empty.write_bytes(b"")
    assert_usage_error(cli(command, empty), f"{expected}'{empty}', which is an empty file")


@pytest.mark.parametrize(
    "flag, fragment",
    [
        ("--runs=0", "Expected --runs to be an integer >= 1. Received: --runs='0'"),
        ("--threads=two", "Expected --threads to be an integer >= 1. Received: --threads='two'"),
        ("--warmup=-1", "Expected --warmup to be an integer >= 0"),
        ("--repeats=3", "Expected a flag of `kcompress bench` (see --help). Received: flag='--repeats'"),
    ],
)
def test_bench_bad_flags_exit_2(cli, mlp_tflite, flag, fragment):
    assert_usage_error(cli("bench", mlp_tflite[0], flag), f"kcompress bench: {fragment}")
