"""Where a MiniLM's int8 accuracy goes: each group of activation tensors left float in turn.

The int8 op profile (``int8_op_profile.py``) says where the int8 time
goes; this says where the int8 error goes. MiniLM is fine-tuned on the
shipped snippets, then wrapped by `quantize_model` and calibrated (the
"calibrated" columns), then QAT fine-tuned (the "after QAT" columns). For
each row, the activation quantizers of one group of tensors return their
input unrounded (`quantizers.leaving_float`) while weights and every other
tensor stay on their int8 grids. The row's logits RMSE against the float
model, accuracy and agreement with the float model's predictions (Keras
inference, which rounds as the int8 kernels do) show how much of the int8
error that group carries. After QAT the reference is the QAT model with
every activation float, since QAT goes on training the weights. "all
int8" is the model as it converts, with the outlier channels of each
block's FFN residual stream divided (`QuantizeTransformerEncoder`);
"weights only" leaves every activation float. The last row is a second
model, the same recipe with ``QuantizationConfig(outlier_ratio=0)``: one
int8 grid for all channels, the form before.

Run: ``python benchmarks/int8_error_budget.py [--train-size 4000] [--test-size 1024] [--seed 0]``
(1,034 s on 2 cores). Writes ``benchmarks/results/int8_error_budget.json`` and ``.md``.
"""

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

_INNER = (  # the LayerNorm tensors between its input and output
    "centered",
    "sum_squares",
    "inverse_norm",
    "normalized",
    "scaled",
)

# (row, which quantizer names it leaves float). Names are the wrapper's name and the tensor's role.
GROUPS = (
    ("all int8", lambda name: False),
    ("weights only (every activation float)", lambda name: True),
    ("embeddings: sum and LayerNorm", lambda name: name.startswith("quant_embeddings_")),
    ("attention: query, key, value", lambda name: name.endswith(("_query", "_key", "_value"))),
    ("attention: scores, masked scores", lambda name: name.endswith("_scores")),
    ("attention: probabilities", lambda name: name.endswith("_probabilities")),
    ("attention: context, output", lambda name: name.endswith(("_context", "self_attention_layer_output"))),
    ("attention LayerNorms: every tensor", lambda name: "self_attention_layer_norm_" in name),
    ("FFN: intermediate (GELU input, output)", lambda name: "feedforward_intermediate_dense_" in name),
    ("FFN: output dense", lambda name: name.endswith("feedforward_output_dense_output")),
    ("FFN LayerNorms: every tensor", lambda name: "feedforward_layer_norm_" in name),
    ("FFN LayerNorms: input (residual sum)", lambda name: name.endswith("feedforward_layer_norm_input")),
    ("FFN LayerNorms: inner tensors", lambda name: "feedforward_layer_norm_" in name and name.endswith(_INNER)),
    ("pooler and logits", lambda name: name.startswith(("quant_pooled", "quant_logits"))),
)


# The same recipe with one int8 grid for every channel of the FFN residual stream (the form before
# `QuantizeTransformerEncoder` divided its outlier channels).
ONE_GRID = "all int8, one grid per residual tensor (outlier_ratio=0)"


def _parse():
    from _minilm import parser as minilm_parser

    parser = minilm_parser(__doc__, sequence_length=64, test_size=1024)
    parser.add_argument("--calibration-size", type=int, default=64)
    parser.add_argument("--qat-size", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.quick:
        args.train_size, args.qat_size, args.test_size, args.calibration_size = 64, 64, 64, 16
    return args


def main():
    args = _parse()
    import keras
    import numpy as np
    import tensorflow as tf
    from _minilm import compile_classifier, fine_tuned_minilm, tokens
    from _results import write_results

    from kcompress import quantization
    from kcompress.data import load_rotten_tomatoes
    from kcompress.quantization.quantizers import leaving_float

    keras.utils.set_random_seed(args.seed)
    started = time.perf_counter()
    train = load_rotten_tomatoes("train", size=args.train_size)
    qat_data = load_rotten_tomatoes("train")[-args.qat_size :]
    test = load_rotten_tomatoes("test", size=args.test_size)
    model, _ = fine_tuned_minilm(train, args.sequence_length)
    x_test = tokens(model.preprocessor, test.texts)
    calibration = tokens(model.preprocessor, train.texts[: args.calibration_size])

    def logits(m, batch=64):
        run = tf.function(lambda x: m(x, training=False))  # traced here: inside the caller's context
        batches = ({k: v[i : i + batch] for k, v in x_test.items()} for i in range(0, len(test.labels), batch))
        return np.concatenate([np.asarray(run(x)) for x in batches])

    reference = logits(model)
    float_accuracy = float(np.mean(reference.argmax(-1) == test.labels))
    print(f"float model: accuracy {float_accuracy:.3f}", flush=True)

    def scores(out, reference, **extra):
        return {
            "rmse": float(np.sqrt(np.mean((out - reference) ** 2))),
            "accuracy": float(np.mean(out.argmax(-1) == test.labels)),
            "same_as_reference": float(np.mean(out.argmax(-1) == reference.argmax(-1))),
            **extra,
        }

    def budget(qat, stage, reference):
        rows = {}
        for label, select in GROUPS:
            with leaving_float(lambda q, select=select: select(q.name)):
                rows[label] = scores(logits(qat), reference)
            print(f"{stage:>10} {label:>42}: {rows[label]}", flush=True)
        return rows

    def fine_tune(qat):
        compile_classifier(qat, 2e-5).fit(qat_data.texts, qat_data.labels, batch_size=32, epochs=1, verbose=2)
        # QAT trains on: the float model is no longer the model's own float form. Its weights-only form is.
        with leaving_float(lambda q: True):
            return logits(qat)

    qat = quantization.quantize_model(model)
    quantization.calibrate(qat, calibration)
    divided = sum(block.divided_channels for block in quantization.encoder_wrappers(qat))
    calibrated = budget(qat, "calibrated", reference)
    print("quantization-aware fine-tuning", flush=True)
    after_qat = budget(qat, "after QAT", fine_tune(qat))

    print("one grid per residual tensor: calibrated, then quantization-aware fine-tuning", flush=True)
    keras.utils.set_random_seed(args.seed)
    one_grid = quantization.quantize_model(model, quantization.QuantizationConfig(outlier_ratio=0))
    quantization.calibrate(one_grid, calibration)
    calibrated[ONE_GRID] = scores(logits(one_grid), reference)
    one_grid_reference = fine_tune(one_grid)
    after_qat[ONE_GRID] = scores(logits(one_grid), one_grid_reference)
    print(f"{ONE_GRID}: calibrated {calibrated[ONE_GRID]}, after QAT {after_qat[ONE_GRID]}", flush=True)

    lines = [
        f"MiniLM-L6-H384 fine-tuned 1 epoch on {len(train):,} snippets, calibrated on {len(calibration['token_ids'])}, "
        f"then QAT on {len(qat_data):,}; sequence length {args.sequence_length}; seed {args.seed}; Keras inference "
        f"(rounding as the int8 kernels do) on {len(test):,} test snippets. Float model accuracy {float_accuracy:.3f}. "
        "Each row leaves one group of activation tensors float; weights stay int8. RMSE and agreement are "
        "against the float model for the calibrated model, and against the QAT model's own weights-only form "
        "after QAT (QAT trains on, so the float model is no longer its float form). Calibration divided "
        f"{divided} of the residual stream's 6 x 384 channels (QuantizeTransformerEncoder); the last row is the "
        "same recipe with one grid for all of them.",
        "",
        "| tensors left float | calibrated: logits RMSE | accuracy | same as float | after QAT: logits RMSE | "
        "accuracy | same as weights-only |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label in [label for label, _ in GROUPS] + [ONE_GRID]:
        c, q = calibrated[label], after_qat[label]
        lines.append(
            f"| {label} | {c['rmse']:.3f} | {c['accuracy']:.3f} | {c['same_as_reference']:.3f} | "
            f"{q['rmse']:.3f} | {q['accuracy']:.3f} | {q['same_as_reference']:.3f} |"
        )
    table = "\n".join(lines)
    print("\n" + table)
    if args.quick:
        return
    result = {
        "seed": args.seed,
        "train_size": len(train),
        "calibration_size": len(calibration["token_ids"]),
        "qat_size": len(qat_data),
        "test_size": len(test),
        "sequence_length": args.sequence_length,
        "float_accuracy": float_accuracy,
        "divided_channels": divided,
        "calibrated": calibrated,
        "after_qat": after_qat,
        "seconds": time.perf_counter() - started,
    }
    write_results("int8_error_budget", result, table)


if __name__ == "__main__":
    main()
