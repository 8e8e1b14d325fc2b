"""tfmot rows of cnn_edge.py: QAT int8 or XNNPACK pruning of a tf_keras MobileNetV2 twin.

Runs in its own interpreter with ``TF_USE_LEGACY_KERAS=1`` (tfmot needs
tf_keras; see ``_subprocess.py``), started by `_cnn_edge.run_tfmot`. The parent
passes one ``.npz`` holding the training images and labels and the trained
Keras 3 weights (`_cnn_edge.save_for_twin`); this script
builds the tf_keras twin, loads the weights, fine-tunes it with tfmot,
writes the ``.tflite`` and prints one JSON line.

Usage:
    python benchmarks/_cnn_edge_tfmot.py --task qat --data in.npz --out model.tflite \
        --alpha 0.35 --size 96 --epochs 2 --lr 1e-4 --batch-size 64 --seed 0
"""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # Must precede any TensorFlow import.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cnn_edge import build, load_weights  # noqa: E402


def _output_quantize_config():
    """tfmot has no config for Rescaling: quantize its output only (the int8 MUL + ADD)."""
    import tensorflow_model_optimization as tfmot

    class OutputOnly(tfmot.quantization.keras.QuantizeConfig):
        def get_weights_and_quantizers(self, layer):
            return []

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            pass

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return [tfmot.quantization.keras.quantizers.MovingAverageQuantizer(8, False, True, False)]

        def get_config(self):
            return {}

    return OutputOnly


def _qat(model, tf_keras, tfmot):
    quantize = tfmot.quantization.keras
    output_only = _output_quantize_config()

    def annotate(layer):
        if isinstance(layer, tf_keras.layers.Rescaling):
            return quantize.quantize_annotate_layer(layer, output_only())
        return quantize.quantize_annotate_layer(layer) if not isinstance(layer, tf_keras.layers.InputLayer) else layer

    annotated = tf_keras.models.clone_model(model, clone_function=annotate)
    annotated.set_weights(model.get_weights())
    with quantize.quantize_scope({"OutputOnly": output_only}):
        return quantize.quantize_apply(annotated), []


def _prune(model, args, steps, tfmot):
    sparsity = tfmot.sparsity.keras
    schedule = sparsity.PolynomialDecay(0.0, args.sparsity, begin_step=0, end_step=steps, frequency=args.frequency)
    pruned = sparsity.prune_low_magnitude(
        model, pruning_schedule=schedule, pruning_policy=sparsity.PruneForLatencyOnXNNPack()
    )
    return pruned, [sparsity.UpdatePruningStep()]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True, choices=("qat", "prune"))
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--alpha", type=float, default=0.35)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--sparsity", type=float, default=0.75)
    parser.add_argument("--end-step", type=int, default=0)
    parser.add_argument("--frequency", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    with contextlib.redirect_stdout(sys.stderr):
        import tensorflow as tf
        import tensorflow_model_optimization as tfmot
        import tf_keras

        tf_keras.utils.set_random_seed(args.seed)
        data = np.load(args.data)
        x, y = data["x"], data["y"]
        kind = "mobilenet_v2" if args.task == "qat" else "xnnpack_ready"
        model = build(kind, args.alpha, args.size, args.momentum, tf_keras)
        load_weights(model, data)
        started = time.perf_counter()
        if args.task == "qat":
            trained, callbacks = _qat(model, tf_keras, tfmot)
        else:
            trained, callbacks = _prune(model, args, args.end_step, tfmot)
        loss = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=args.task == "prune")
        trained.compile(tf_keras.optimizers.Adam(args.lr), loss, metrics=["accuracy"])
        trained.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, verbose=0, callbacks=callbacks)
        fine_tune_s = time.perf_counter() - started
        zeros = None
        if args.task == "prune":
            trained = tfmot.sparsity.keras.strip_pruning(trained)
            kernels = [
                layer.kernel.numpy()
                for layer in trained.layers
                if isinstance(layer, tf_keras.layers.Conv2D)
                and not isinstance(layer, tf_keras.layers.DepthwiseConv2D)
                and layer.kernel.shape[:2] == (1, 1)
            ]
            zeros = sum(int(np.sum(k == 0)) for k in kernels) / sum(k.size for k in kernels)
        # Batch 1, static, as `tflite_export.convert` writes the kcompress files.
        serve = tf.function(lambda images: trained(images, training=False))
        function = serve.get_concrete_function(tf.TensorSpec([1, args.size, args.size, 3], tf.float32))
        converter = tf.lite.TFLiteConverter.from_concrete_functions([function], trained)
        if args.task == "qat":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            # tfmot leaves Rescaling's MUL and ADD unquantized (the output quantizer does not cover its
            # constants): the converter calibrates them on the images the PTQ row calibrates on.
            converter.representative_dataset = lambda: ([x[i : i + 1]] for i in range(min(200, len(x))))
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        else:
            converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
        Path(args.out).write_bytes(converter.convert())
    result = {"task": args.task, "tfmot_version": tfmot.__version__, "fine_tune_s": fine_tune_s, "zeros": zeros}
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
