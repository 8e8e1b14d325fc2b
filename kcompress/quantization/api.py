"""Entry points: `quantize_model`, `strip_quantization`, `calibrate`."""

import fnmatch

import keras

from kcompress import _surgery
from kcompress._errors import expected_error
from kcompress._inputs import as_model_inputs
from kcompress.quantization import config as config_lib
from kcompress.quantization import encoder, fake_quant, folding, quantizers, registry
from kcompress.quantization.attention import QuantizeAttention
from kcompress.quantization.base import QuantizeBase
from kcompress.quantization.conv_batch_norm import QuantizeConvBatchNorm
from kcompress.quantization.kernel import QuantizeKernel
from kcompress.quantization.operation import QuantizeOperation
from kcompress.quantization.output import QuantizeOutput


def quantization_wrappers(model):
    """All quantization wrappers in `model`, nested ones included."""
    return _surgery.find_layers(model, lambda layer: isinstance(layer, (QuantizeBase, QuantizeOperation)))


def _per_layer(config, layer_configs):
    """Returns ``layer -> QuantizationConfig | None`` from the overrides."""
    if layer_configs is None:
        layer_configs = {}
    if not isinstance(layer_configs, dict):
        raise expected_error(
            "layer_configs to be a dict of layer name pattern -> config or None", layer_configs=layer_configs
        )
    resolved = {}
    for pattern, value in layer_configs.items():
        if not isinstance(pattern, str):
            raise expected_error("layer name patterns (str) as layer_configs keys", layer_configs=layer_configs)
        resolved[pattern] = None if value is None else config_lib.get(value)

    def choose(layer):
        for pattern, value in resolved.items():
            if fnmatch.fnmatchcase(layer.name, pattern):
                return value
        return config

    return choose, resolved


def quantize_model(model, config=None, layer_configs=None):
    """Returns a copy of `model` that trains with int8 fake quantization.

    Every supported layer (see `registry.QUANTIZABLE`: Dense, EinsumDense,
    Conv1D/2D, DepthwiseConv2D, SeparableConv2D, Embedding,
    MultiHeadAttention and keras-hub's attention, LayerNormalization,
    Add/Concatenate/activations/average pooling) is wrapped so that its
    weights and the activations the int8 TFLite graph holds are rounded as
    the int8 kernels will round them.
    Train it with `fit` as usual; `tflite_export.convert(..., mode="int8")`
    then writes an int8 `.tflite` whose outputs match it. Works on
    Sequential, functional, subclassed and keras-hub models; the input model
    is unchanged. Zero weights (a model pruned and stripped by
    `kcompress.pruning`) stay zero.

    Args:
        model: A built `keras.Model`.
        config: A `QuantizationConfig` (default: int8 per-channel weights,
            int8 activations).
        layer_configs: Optional dict of layer-name glob pattern ->
            `QuantizationConfig`, or None to leave matching layers float.
            The first matching pattern wins.

    Returns:
        The quantization-aware model.

    Example:

    >>> import numpy as np
    >>> from kcompress import quantization
    >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
    ...                           keras.layers.Dense(2)])
    >>> qat = quantization.quantize_model(model)
    >>> qat.compile("adam", "mse")
    >>> _ = qat.fit(np.random.rand(32, 8), np.random.rand(32, 2), verbose=0)
    >>> [type(layer).__name__ for layer in qat.layers]
    ['QuantizeKernel', 'QuantizeKernel']
    """
    if not isinstance(model, keras.Model):
        raise expected_error("a keras.Model", model=model)
    if not model.built:
        raise expected_error("a built model (call it on data or give it an Input)", model=model.name)
    if quantization_wrappers(model):
        raise expected_error("a model not already quantized (strip_quantization it first)", model=model.name)
    config = config_lib.get(config)
    choose, patterns = _per_layer(config, layer_configs)
    for pattern in patterns:
        if not _surgery.find_layers(model, lambda layer, p=pattern: fnmatch.fnmatchcase(layer.name, p)):
            raise expected_error(f"layer_configs patterns that match layers of '{model.name}'", pattern=pattern)

    block_configs = {}  # id(encoder block of the copy) -> the config its original's name chooses
    # Conv → BatchNormalization [→ ReLU] chains whose conv is quantized train as one folded op.
    folds = {
        key: fold
        for key, fold in folding.find_folds(model).items()
        if choose(fold.layer) and registry.lookup(fold.layer) is not None
    }
    folded_away = {id(layer) for fold in folds.values() for layer in (fold.batch_norm, fold.activation_layer) if layer}

    def wrap(layer, original):
        if isinstance(layer, keras.layers.Layer) and encoder.supports(layer):
            block_configs[id(layer)] = choose(original)
        if id(original) in folded_away:
            return folding.FoldedLayer(keras.saving.serialize_keras_object(original), name=original.name)
        fold = folds.get(id(original))
        if fold is not None and fold.batch_norm is not None:
            return QuantizeConvBatchNorm(
                layer, choose(original), batch_norm=_surgery.copy_layer(fold.batch_norm), activation=fold.activation
            )
        entry = registry.lookup(layer)
        if entry is None:
            return None
        # Patterns match the names of the input model's layers (a copy may rename auto-named ones).
        layer_config = choose(original)
        if layer_config is None:
            return None
        wrapper_class, extra = entry
        if fold is not None:  # A ReLU layer after it runs inside its int8 op: one range, after the ReLU.
            if wrapper_class is QuantizeOutput:
                extra["activation"] = fold.activation
            else:
                layer.activation = keras.activations.get(fold.activation)
        return wrapper_class(layer, layer_config, **extra)

    quantized = _surgery.transform_layers(model, wrap, with_originals=True, operations=True)
    wrappers = quantization_wrappers(quantized)
    if not wrappers:
        raise expected_error(
            f"a model with at least one layer kcompress can quantize ({registry.supported_names()})",
            model=model.name,
        )
    for wrapper in wrappers:
        if not wrapper.built and getattr(wrapper, "layer", wrapper).built:
            _build_wrapper(wrapper)
    for wrapper in wrappers:
        if isinstance(wrapper, QuantizeKernel) and _reads_a_view_of_a_quantized_tensor(wrapper):
            wrapper.quantize_input = False
    return _wrap_encoders(quantized, block_configs)


def _wrap_encoders(quantized, block_configs):
    """Wraps, in place, each keras-hub encoder block whose feed-forward layers are quantized."""
    blocks = {}
    for layer in _surgery.find_layers(quantized, encoder.can_split):
        layer_config = block_configs.get(id(layer))
        if layer_config is not None and layer_config.outlier_ratio > 0:
            blocks[id(layer)] = encoder.QuantizeTransformerEncoder(layer, layer_config)
    if not blocks:
        return quantized
    return _surgery.replace_in_place(quantized, lambda layer: blocks.get(id(layer)))


def encoder_wrappers(model):
    """The `QuantizeTransformerEncoder` blocks of `model`."""
    return _surgery.find_layers(model, lambda layer: isinstance(layer, encoder.QuantizeTransformerEncoder))


def _view_source(layer):
    """The `KerasHistory` of the tensor a chain of `registry.VIEWS` turns into `layer`'s input, or None."""
    if len(layer._inbound_nodes) != 1 or len(layer._inbound_nodes[0].input_tensors) != 1:
        return None
    history = layer._inbound_nodes[0].input_tensors[0]._keras_history
    viewed = False
    while registry.is_view(history.operation):
        inputs = history.operation._inbound_nodes[history.node_index].input_tensors
        if len(inputs) != 1:
            return None
        history = inputs[0]._keras_history
        viewed = True
    return history if viewed else None


def _reads_a_view_of_a_quantized_tensor(layer):
    """Whether `layer` reads a slice/reshape/... of a tensor that carries an int8 range.

    Such an input is unmarked when `layer` runs (the view is a new tensor),
    yet the int8 graph keeps the viewed tensor's scale through the view. The
    producer is run once on zeros to see whether its output is marked (a
    keras-hub encoder block ends in a quantized LayerNorm, or not).
    """
    history = _view_source(layer)
    if history is None:
        return False
    operation, node_index, tensor_index = history
    node = operation._inbound_nodes[node_index]
    if node.is_input:
        return False
    # Unknown sizes are 2, not 1: attention over one position warns of a softmax over a size-1 axis.
    zeros = {id(t): keras.ops.zeros([2 if d is None else d for d in t.shape], t.dtype) for t in node.input_tensors}
    args, kwargs = node.arguments.fill_in(zeros)
    outputs = keras.tree.flatten(operation(*args, **kwargs))
    return fake_quant.is_marked(outputs[tensor_index])


def _build_wrapper(wrapper):
    if isinstance(wrapper, QuantizeAttention):
        wrapper.build(**wrapper.get_build_config()["shapes_dict"])
    else:
        wrapper.build(None)


def calibrate(model, data, steps=None):
    """Sets the activation ranges of a quantized model from data, no training.

    Runs inference on `data` while the ranges follow the batches (as in
    training), then freezes them. In a keras-hub BERT the first pass also
    finds the outlier channels of each block's feed-forward residual stream
    (`QuantizeTransformerEncoder`); when there are some, they are divided
    and the ranges are learnt again in a second pass. Useful before QAT (a better starting
    range than the first batch) or instead of it, for int8 export of a
    model that is not fine-tuned (post-training quantization with the
    same wrappers).

    Args:
        model: A model returned by `quantize_model`.
        data: A `tf.data.Dataset` of inputs or ``(inputs, targets)``, or
            an array / dict of arrays (one batch).
        steps: Optional number of batches to use.

    Example:

    >>> import numpy as np
    >>> from kcompress import quantization
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> qat = quantization.quantize_model(model)
    >>> quantization.calibrate(qat, np.ones((8, 4)))
    1
    """
    if not quantization_wrappers(model):
        raise expected_error("a model returned by quantize_model", model=getattr(model, "name", model))
    if steps is not None and (not isinstance(steps, int) or steps < 1):
        raise expected_error("steps to be None or an integer >= 1", steps=steps)
    batches = [data] if not hasattr(data, "as_numpy_iterator") and not hasattr(data, "element_spec") else data
    inputs = []
    for batch in batches:
        if steps is not None and len(inputs) >= steps:
            break
        inputs.append(batch[0] if isinstance(batch, tuple) else batch)
    if not inputs:
        raise expected_error("data with at least one batch", data=data)
    blocks = encoder_wrappers(model)
    for block in blocks:
        block.start_observing()
    _run_calibrating(model, inputs)
    if sum(block.split_outliers() for block in blocks):
        # The ranges were learnt on undivided channels: learn them again on the divided ones.
        for wrapper in quantization_wrappers(model):
            for quantizer in wrapper.quantizers.values():
                quantizer.reset_range()
        _run_calibrating(model, inputs)
    return len(inputs)


def _run_calibrating(model, inputs):
    with quantizers.calibrating():
        for batch in inputs:
            model(as_model_inputs(model, batch), training=False)


def _stripped_layer(wrapper):
    """What stands in a wrapper's place after stripping, when it is not the wrapped layer itself."""
    if isinstance(wrapper, QuantizeConvBatchNorm):
        return wrapper.stripped_layer()
    if isinstance(wrapper, QuantizeOperation):
        return wrapper.unquantized()
    if isinstance(wrapper, folding.FoldedLayer):
        return wrapper.restored()
    return None


def strip_quantization(model):
    """Returns a plain Keras copy of `model` with int8-rounded weights.

    Every wrapper is replaced by its layer, whose kernels hold their
    fake-quantized values; activation ranges are dropped. A
    BatchNormalization folded into the Conv or Dense before it comes back
    with statistics that leave its input as is, that layer holding the
    folded kernel and bias. The result needs nothing from kcompress to load; export the quantization-aware model
    itself to get an int8 `.tflite`.

    Example:

    >>> from kcompress import quantization
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> plain = quantization.strip_quantization(quantization.quantize_model(model))
    >>> type(plain.layers[-1]).__name__
    'Dense'
    """
    if isinstance(model, QuantizeBase):
        return _surgery.unwrap_layer(model, model.quantized_weights())
    if not isinstance(model, keras.Model):
        raise expected_error("a keras.Model", model=model)
    wrappers = quantization_wrappers(model)
    if not wrappers:
        return _surgery.copy_layer(model)
    return _surgery.unwrap_all(
        model,
        wrappers + encoder_wrappers(model) + _surgery.find_layers(model, lambda l: isinstance(l, folding.FoldedLayer)),
        lambda wrapper: wrapper.quantized_weights() if isinstance(wrapper, QuantizeBase) else [],
        _stripped_layer,
    )
