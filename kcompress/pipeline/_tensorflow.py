"""The pipeline's TensorFlow work under another Keras backend: one TensorFlow-backend child process.

TFLite conversion takes a TensorFlow-backend Keras model. Under JAX the
stages train in the JAX process, save their ``model.keras`` as usual, and
a `TensorFlowWorker` (``KERAS_BACKEND=tensorflow python -m
kcompress.pipeline._tensorflow``, started once per run) loads each saved
model and measures it: test accuracy, the float32 `.tflite` of a Keras
stage, or the export stage's converted, verified and timed file.

Requests and replies are JSON lines; a reply is the line on the child's
stdout that starts with `_REPLY` (TensorFlow may print lines of its own).
"""

import json
import os
import subprocess
import sys

import numpy as np

from kcompress._errors import expected_error

_REPLY = "kcompress-tensorflow-worker: "
_MODULE = "kcompress.pipeline._tensorflow"
# Keras' multi-process settings are the parent's: the child is one plain TensorFlow process.
_PARENT_ONLY = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES", "KERAS_DISTRIBUTION_PROCESS_ID")


def save_tokens(path, tokens):
    """Writes `tokens` (the pipeline's `Tokens`) to an ``.npz`` file that `load_tokens` reads.

    Example:

    >>> import os, tempfile
    >>> from types import SimpleNamespace
    >>> path = os.path.join(tempfile.mkdtemp(), "tokens.npz")
    >>> ids = np.arange(6).reshape(3, 2)
    >>> save_tokens(path, SimpleNamespace(x_train={"ids": ids}, y_train=np.zeros(3), x_test=ids, y_test=np.ones(3)))
    >>> loaded = load_tokens(path)
    >>> sorted(loaded.x_train), loaded.x_test.shape, loaded.y_test.tolist()
    (['ids'], (3, 2), [1.0, 1.0, 1.0])
    """
    arrays = {}
    for name in ("x_train", "y_train", "x_test", "y_test"):
        value = getattr(tokens, name)
        if isinstance(value, dict):
            arrays.update({f"{name}/{key}": np.asarray(v) for key, v in value.items()})
        else:
            arrays[name] = np.asarray(value)
    np.savez(path, **arrays)


def load_tokens(path):
    """The `Tokens` written by `save_tokens` (see there)."""
    from kcompress.pipeline.data import Tokens

    values = {}
    with np.load(path) as arrays:
        for key in arrays.files:
            name, _, inner = key.partition("/")
            if inner:
                values.setdefault(name, {})[inner] = arrays[key]
            else:
                values[name] = arrays[key]
    return Tokens(values["x_train"], values["y_train"], values["x_test"], values["y_test"])


class TensorFlowWorker:
    """A TensorFlow-backend child process that measures and exports the stages' saved models.

    Started on the first request; `close` ends it. `scratch` is a private
    folder for the test data file and the child's log.
    """

    def __init__(self, scratch):
        self.scratch = scratch
        self._process = None
        self._log = None

    def _start(self):
        env = {k: v for k, v in os.environ.items() if k not in _PARENT_ONLY}
        env.update(KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL=env.get("TF_CPP_MIN_LOG_LEVEL", "3"))
        self._log = open(os.path.join(self.scratch, "tensorflow_worker.log"), "wb")  # noqa: SIM115 (kept open)
        self._process = subprocess.Popen(
            [sys.executable, "-m", _MODULE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=env,
        )

    def request(self, **request):
        """Sends one request; returns the child's reply (a dict), or raises its error."""
        if self._process is None:
            self._start()
        self._process.stdin.write(json.dumps(request) + "\n")
        self._process.stdin.flush()
        for line in self._process.stdout:
            if line.startswith(_REPLY):
                reply = json.loads(line[len(_REPLY) :])
                if "error" not in reply:
                    return reply
                if reply["kind"] == "ValueError":  # A Keras-style "Expected ..." stays one.
                    raise ValueError(reply["error"])
                raise RuntimeError(f"{reply['kind']} in the TensorFlow worker process: {reply['error']}")
        self._process.wait()
        raise RuntimeError(
            f"The TensorFlow worker process (KERAS_BACKEND=tensorflow, for the .tflite files) ended with exit code "
            f"{self._process.returncode}:\n{self._log_tail()}"
        )

    def _log_tail(self, characters=3000):
        self._log.flush()
        with open(self._log.name, "rb") as f:
            return f.read().decode("utf-8", "replace")[-characters:]

    def close(self):
        """Ends the child process (it exits when its input closes)."""
        if self._process is not None:
            self._process.stdin.close()
            try:
                self._process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process.stdout.close()
            self._log.close()
            self._process = None


def _load_model(path):
    import keras

    model = keras.models.load_model(path, compile=False)
    if getattr(model, "preprocessor", None) is not None:
        model.preprocessor = None  # The stages measure on token ids.
    return model


def _handle(request):
    from kcompress.pipeline import measure
    from kcompress.pipeline.config import ExportStage
    from kcompress.pipeline.export import export_row

    model = _load_model(request["model"])
    tokens = load_tokens(request["tokens"])
    settings = ExportStage(**request["export"])
    if request["action"] == "measure":
        return measure.measured_row(request["stage"], model, tokens, settings)
    if request["action"] == "export":
        return export_row(model, request["directory"], settings, tokens)
    raise expected_error("an action in ('measure', 'export')", action=request["action"])


def main():
    """Serves requests from stdin, one JSON line each, until stdin closes."""
    import keras

    if keras.backend.backend() != "tensorflow":
        raise expected_error("KERAS_BACKEND=tensorflow in the TensorFlow worker", backend=keras.backend.backend())
    for line in sys.stdin:
        try:
            reply = _handle(json.loads(line))
        except Exception as error:  # noqa: BLE001 (every failure goes back to the parent, which raises it)
            reply = {"error": str(error), "kind": type(error).__name__}
        print(_REPLY + json.dumps(reply, default=float), flush=True)


if __name__ == "__main__":
    main()
