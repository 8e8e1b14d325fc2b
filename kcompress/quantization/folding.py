"""Which BatchNormalization layers fold into the layer before them, and which ReLU layers fuse.

In a functional or Sequential graph, ``Conv2D → BatchNormalization →
ReLU6`` is one CONV_2D in the int8 file: the converter folds the
normalization into the kernel and bias and fuses the activation. QAT
trains that one op (`QuantizeConvBatchNorm`); `find_folds` finds the
chains.
"""

import dataclasses

import keras

from kcompress._layer_table import LayerTable

_L = keras.layers
# Layers a BatchNormalization folds into: each is linear in its kernel, one output channel per
# BatchNormalization channel. The value maps a kernel shape to the shape of its per-output-channel
# factors (a DepthwiseConv2D's output channel c * multiplier + m is kernel[..., c, m]).
FOLDABLE = LayerTable(
    {
        _L.Dense: lambda kernel_shape: kernel_shape[-1:],
        _L.Conv1D: lambda kernel_shape: kernel_shape[-1:],
        _L.Conv2D: lambda kernel_shape: kernel_shape[-1:],
        _L.DepthwiseConv2D: lambda kernel_shape: kernel_shape[-2:],
    }
)
# The activations a fused chain can end with: name -> function.
ACTIVATIONS = {None: lambda y: y, "relu": keras.ops.relu, "relu6": keras.ops.relu6}

# Layers whose TFLite op has a fused activation: a ReLU / ReLU6 layer reading them is one op with them.
FUSES_ACTIVATION = LayerTable(
    {_L.Dense: True, _L.Conv1D: True, _L.Conv2D: True, _L.DepthwiseConv2D: True, _L.Add: True, _L.Subtract: True}
)


def channel_shape(layer):
    """The shape per-output-channel factors of `layer`'s kernel take (broadcasts against it)."""
    return tuple(FOLDABLE.lookup(type(layer))(tuple(layer.kernel.shape)))


@dataclasses.dataclass(frozen=True)
class Fold:
    """One chain ``layer → batch_norm [→ activation layer]`` of the original model.

    Attributes:
        layer: The Conv/Dense layer.
        batch_norm: The `BatchNormalization` layer folded into the layer, or
            None when only an activation is fused.
        activation_layer: The ReLU / ReLU6 layer after it, or None.
        activation: ``"relu"``, ``"relu6"`` or None: what the layer then ends with.
    """

    layer: object
    batch_norm: object = None
    activation_layer: object = None
    activation: str = None


def fused_activation(layer):
    """``"relu"`` / ``"relu6"`` if `layer` is a ReLU the int8 conv can fuse, else None.

    Example:

    >>> fused_activation(keras.layers.ReLU(6.0)), fused_activation(keras.layers.Activation("relu"))
    ('relu6', 'relu')
    >>> fused_activation(keras.layers.ReLU(negative_slope=0.1)) is None
    True
    """
    if isinstance(layer, _L.ReLU):
        if float(layer.negative_slope) != 0.0 or float(layer.threshold) != 0.0:
            return None
        return {None: "relu", 6.0: "relu6"}.get(None if layer.max_value is None else float(layer.max_value))
    if type(layer) is _L.Activation:
        return {keras.activations.relu: "relu", keras.activations.relu6: "relu6"}.get(layer.activation)
    return None


def _graph(model):
    """The functional graph of a Functional or Sequential model, else None."""
    graph = getattr(model, "_functional", None) if isinstance(model, keras.Sequential) else model
    return graph if hasattr(graph, "_nodes_by_depth") else None


def _single_consumer(layer, nodes, outputs):
    """The one layer of `nodes` that reads `layer`'s only output, or None (several, none, a model output)."""
    if len([n for n in layer._inbound_nodes if id(n) in nodes]) != 1:
        return None  # A layer called more than once (shared) keeps its own weights per call.
    readers = [n for n in layer._outbound_nodes if id(n) in nodes]
    produced = [n for n in layer._inbound_nodes if id(n) in nodes][0].output_tensors
    if len(readers) != 1 or len(produced) != 1 or id(produced[0]) in outputs:
        return None
    reader = readers[0]
    if len(reader.input_tensors) != 1 or len([n for n in reader.operation._inbound_nodes if id(n) in nodes]) != 1:
        return None
    return reader.operation


def channels_last_batch_norm(layer, rank=None):
    """Whether `layer` is a BatchNormalization over the last axis (of a `rank`-D input, if given)."""
    if not isinstance(layer, _L.BatchNormalization):
        return False
    rank = rank if rank is not None else len(layer.input.shape) if layer._inbound_nodes else None
    axis = layer.axis if isinstance(layer.axis, int) else (layer.axis[0] if len(layer.axis) == 1 else None)
    return axis == -1 or (rank is not None and axis == rank - 1)


def _linear_channels_last(layer):
    return (
        getattr(layer, "activation", keras.activations.linear) is keras.activations.linear
        and getattr(layer, "data_format", "channels_last") == "channels_last"
    )


def find_folds(model):
    """``id(layer) -> Fold`` for each chain in `model` (and the plain graphs nested in it) that is one int8 op.

    A BatchNormalization folds into the layer before it (Dense, Conv1D,
    Conv2D, DepthwiseConv2D; linear activation, channels last) when that
    layer is called once and its output goes only to the normalization
    (over the last axis, called once). A ReLU or ReLU6 layer that alone
    reads the output of such a chain, of one of those layers, or of an Add
    or Subtract is fused into it: TFLite runs it inside that op.

    Example:

    >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3),
    ...                           keras.layers.BatchNormalization(), keras.layers.ReLU(6.0)])
    >>> [(fold.batch_norm.name, fold.activation) for fold in find_folds(model).values()]
    [('batch_normalization', 'relu6')]
    """
    folds = {}
    for holder in [model, *model._flatten_layers(include_self=False)]:
        graph = _graph(holder)
        if graph is None:
            continue
        nodes = {id(node) for depth in graph._nodes_by_depth.values() for node in depth}
        outputs = {id(t) for t in graph.outputs}
        for layer in graph.operations:
            if FUSES_ACTIVATION.lookup(type(layer)) is None or not _linear_channels_last(layer):
                continue
            last = layer
            batch_norm = _single_consumer(layer, nodes, outputs) if FOLDABLE.lookup(type(layer)) else None
            if batch_norm is not None and channels_last_batch_norm(batch_norm, len(layer.output.shape)):
                last = batch_norm
            else:
                batch_norm = None
            after = _single_consumer(last, nodes, outputs)
            activation = fused_activation(after) if after is not None else None
            if batch_norm is not None or activation is not None:
                folds[id(layer)] = Fold(layer, batch_norm, after if activation else None, activation)
    return folds


@keras.saving.register_keras_serializable(package="kcompress")
class FoldedLayer(keras.layers.Layer):
    """Stands where a folded BatchNormalization or fused ReLU was, keeping its name; passes its input on.

    `strip_quantization` puts the layer back (`restored`): the ReLU as it
    was, the BatchNormalization with statistics that leave its input as it
    is (its own are in the folded kernel and bias).

    Args:
        replaced: The serialized layer this one stands for.
        **kwargs: Base layer arguments.

    Example:

    >>> folded = FoldedLayer(keras.saving.serialize_keras_object(keras.layers.ReLU(6.0)), name="relu")
    >>> folded(keras.ops.ones((1, 2)), training=True).shape, type(folded.restored()).__name__
    (TensorShape([1, 2]), 'ReLU')
    """

    def __init__(self, replaced, **kwargs):
        super().__init__(**kwargs)
        self.replaced = replaced

    # **kwargs, not ``mask=``: the node keeps the replaced layer's own arguments (a
    # BatchNormalization's ``mask``), so the restored layer is called as the original was.
    def call(self, inputs, **kwargs):
        return inputs

    def compute_output_spec(self, inputs, **kwargs):
        return keras.KerasTensor(inputs.shape, dtype=inputs.dtype)

    def restored(self):
        """A plain copy of the replaced layer that computes what this one does (its input)."""
        layer = keras.saving.deserialize_keras_object(self.replaced)
        if isinstance(layer, _L.BatchNormalization):
            if not layer.built:  # The serialized layer carries its build config; a hand-made one may not.
                layer.build(self.get_build_config()["input_shape"])
            layer.moving_mean.assign(keras.ops.zeros_like(layer.moving_mean))
            # σ = sqrt(variance + ε) = 1.
            layer.moving_variance.assign(keras.ops.full_like(layer.moving_variance, 1.0 - layer.epsilon))
            if layer.scale:
                layer.gamma.assign(keras.ops.ones_like(layer.gamma))
            if layer.center:
                layer.beta.assign(keras.ops.zeros_like(layer.beta))
        return layer

    def get_config(self):
        return {**super().get_config(), "replaced": self.replaced}
