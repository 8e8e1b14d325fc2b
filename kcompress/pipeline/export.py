"""The pipeline's last stage: `.tflite`, verification, Edge TPU report, latency, app files."""

import dataclasses
import os
import time

import numpy as np

import tflite_export
from kcompress._atomic import write_atomic
from kcompress.pipeline.data import head
from kcompress.pipeline.measure import file_sizes, input_shapes, weight_count
from kcompress.quantization import quantization_wrappers
from tflite_export._runner import Runner

CALIBRATION_EXAMPLES = 200


def _write_text(path, text):
    write_atomic(path, lambda f: f.write(text.encode("utf-8")))


def _app_files(context, directory):
    """``labels.txt`` and, for WordPiece models, ``vocab.txt``: what an app needs next to the model."""
    _write_text(os.path.join(directory, "labels.txt"), "\n".join(context.data.class_names) + "\n")
    tokenizer = getattr(context.preprocessor, "tokenizer", None)
    vocabulary = getattr(tokenizer, "get_vocabulary", lambda: None)()
    if vocabulary:
        _write_text(os.path.join(directory, "vocab.txt"), "\n".join(vocabulary) + "\n")


def run_export(context, model, directory):
    """Converts, verifies, checks for the Edge TPU and times the model; returns the report row.

    Under a backend other than TensorFlow the run's TensorFlow worker does
    it, on the last stage's saved `model_path`.
    """
    started = time.perf_counter()
    if context.worker is not None:
        row = context.worker.request(
            action="export",
            model=context.model_path,
            directory=directory,
            tokens=context.tokens_file(),
            export=dataclasses.asdict(context.config.export),
        )
    else:
        row = export_row(model, directory, context.config.export, context.tokens)
    _app_files(context, directory)
    row["seconds"] = time.perf_counter() - started
    return row


def export_row(model, directory, settings, data):
    """The export stage's work on a TensorFlow-backend model: its `.tflite` in `directory`, and its row.

    Args:
        model: The last stage's Keras model (token ids or images in).
        directory: Where the `.tflite` and ``edgetpu.txt`` go.
        settings: The `ExportStage`.
        data: The run's `Tokens` (calibration, verification and test data).
    """
    started = time.perf_counter()
    name = f"model_{settings.mode}.tflite"
    path = os.path.join(directory, name)
    quantization_aware = bool(quantization_wrappers(model))
    representative = None
    if settings.mode in ("int8", "int16x8") and not quantization_aware:
        representative = head(data.x_train, CALIBRATION_EXAMPLES)
    conversion = tflite_export.convert(
        model,
        path,
        mode=settings.mode,
        representative_data=representative,
        input_shapes=input_shapes(data.x_test),
        allow_float_ops=True,
        float_ops=settings.float_ops,
    )
    kind = f"{settings.mode} for CPU" if settings.float_ops else settings.mode
    verification = tflite_export.verify(model, path, head(data.x_test, settings.verify_samples))
    outputs = Runner(path, num_threads=settings.threads).run_batch(data.x_test)
    logits = next(iter(outputs.values())).value
    accuracy = float(np.mean(np.argmax(logits, axis=-1) == data.y_test))
    edgetpu = tflite_export.check_edgetpu(path)
    _write_text(os.path.join(directory, "edgetpu.txt"), str(edgetpu) + "\n")
    latency = tflite_export.benchmark(path, threads=settings.threads, runs=settings.runs, warmup=5)
    raw, gzipped = file_sizes(directory, [name])
    return {
        "stage": "export",
        "file": name,
        "mode": settings.mode,
        "params": weight_count(model),
        "size_mb": raw / 1e6,
        "gzip_mb": gzipped / 1e6,
        "accuracy": accuracy,
        "latency_ms": latency.median_ms,
        "latency_p90_ms": latency.p90_ms,
        "latency_kind": f"{kind} .tflite",
        "size_kind": f"{kind} .tflite",
        "agreement_with_keras": verification.agreement,
        "max_diff_in_steps": verification.max_diff_in_steps,
        "full_integer": conversion.model.is_full_integer(),
        "float_ops": conversion.float_ops,
        "edgetpu_verdict": edgetpu.verdict,
        "edgetpu_mapped_ops": edgetpu.mapped_ops,
        "total_ops": edgetpu.total_ops,
        "seconds": time.perf_counter() - started,
    }
