"""`XNNPackSparse`: prune the 1x1 convolutions that XNNPACK's sparse kernels run.

LiteRT's CPU delegate, XNNPACK, runs part of a float CNN with sparse kernels
when the `.tflite` stores sparse weights (``tflite_export.convert(...,
sparse=True)``). That part is a chain of layers in CHW layout: it starts at
a 3x3 stride-2 convolution of the 3-channel image with padding 1 on every
side, runs 1x1 convolutions (the sparse ones), depthwise 3x3 / 5x5
convolutions, batch norms, activations, adds and multiplies, and ends at a
global average pooling. One layer XNNPACK cannot run in CHW anywhere in it,
or 2/3 zeros or fewer over its 1x1 kernels (recent XNNPACK also counts
the fully-connected layers right after the pooling), and the whole chain
stays dense. (XNNPACK decides this in ``xnn_subgraph_rewrite_for_nchw``; it takes
the sparse path on ARM and on x86 CPUs without AVX.)

So the policy prunes the 1x1 `Conv2D` kernels of that chain and nothing
else: the first convolution, the depthwise ones and the classifier after the
pooling run dense anyway. It raises, naming the layer, when the model does
not have that shape.
"""

import dataclasses

import keras

from kcompress._errors import expected_error
from kcompress._layer_table import LayerTable
from kcompress.pruning._graph import LayerGraph
from kcompress.pruning.policy import PruningPolicy

_L = keras.layers
_SAME_PADDING = (
    "XNNPACK keeps TensorFlow 'same' padding of a strided convolution, which its sparse path refuses: use "
    "ZeroPadding2D(k // 2) then padding='valid'; XNNPackSparse(check_padding=False) skips this check"
)
_ACTIVATIONS = (
    "linear",
    "relu",
    "relu6",
    "leaky_relu",
    "elu",
    "sigmoid",
    "hard_sigmoid",
    "tanh",
    "silu",
    "swish",
    "hard_silu",
    "hard_swish",
)


def _zero_padding_of(layer, graph, size):
    """Whether `layer` reads a ZeroPadding2D that pads `size` on every side."""
    producers = graph.producers[layer]
    return (
        len(producers) == 1
        and isinstance(producers[0], _L.ZeroPadding2D)
        and tuple(map(tuple, producers[0].padding)) == ((size, size), (size, size))
    )


def _pointwise(layer, graph, check_padding):
    """1x1 convolutions are what runs sparse; XNNPACK's CHW path has no other Conv2D."""
    if layer.kernel_size == (1, 1) and layer.strides == (1, 1) and layer.dilation_rate == (1, 1) and layer.groups == 1:
        return None
    return (
        "only 1x1 Conv2D layers with strides 1, no dilation and groups=1 after the first convolution",
        f"kernel_size={layer.kernel_size}, strides={layer.strides}, dilation_rate={layer.dilation_rate}, "
        f"groups={layer.groups}",
    )


def _depthwise(layer, graph, check_padding):
    shape = f"kernel_size={layer.kernel_size}, strides={layer.strides}, padding={layer.padding!r}"
    if (
        layer.kernel_size not in ((3, 3), (5, 5))
        or layer.strides not in ((1, 1), (2, 2))
        or layer.dilation_rate != (1, 1)
        or layer.depth_multiplier != 1
    ):
        return (
            "DepthwiseConv2D layers 3x3 or 5x5 with strides 1 or 2, no dilation and depth_multiplier=1",
            f"{shape}, dilation_rate={layer.dilation_rate}, depth_multiplier={layer.depth_multiplier}",
        )
    if not check_padding:
        return None
    size = layer.kernel_size[0] // 2
    if layer.padding == "same" and layer.strides == (1, 1):
        return None
    if layer.padding == "valid" and _zero_padding_of(layer, graph, size):
        return None
    return (f"DepthwiseConv2D layers padded by {size} on every side ({_SAME_PADDING})", shape)


def _zero_padding(layer, graph, check_padding):
    consumers = graph.consumers[layer]
    if not check_padding or all(isinstance(c, _L.DepthwiseConv2D) and c.padding == "valid" for c in consumers):
        return None
    return ("ZeroPadding2D layers only before a DepthwiseConv2D with padding='valid'", f"padding={layer.padding}")


def _channels_last(layer, graph, check_padding):
    if layer.axis in (-1, 3):
        return None
    return ("BatchNormalization over the channels (axis=-1)", f"axis={layer.axis}")


def _activation(layer, graph, check_padding):
    name = keras.activations.serialize(layer.activation)
    name = name if isinstance(name, str) else getattr(layer.activation, "__name__", repr(layer.activation))
    if name in _ACTIVATIONS:
        return None
    return (f"Activation layers among {_ACTIVATIONS}", f"activation={name!r}")


def _runs(layer, graph, check_padding):
    return None


# What XNNPACK runs in CHW between the first convolution and the pooling, by layer class. Each entry
# says why a layer does not fit: None, or (what is expected, what the layer has).
SPARSE_PATH = LayerTable(
    {
        _L.Conv2D: _pointwise,
        _L.DepthwiseConv2D: _depthwise,
        _L.ZeroPadding2D: _zero_padding,
        _L.BatchNormalization: _channels_last,
        _L.Activation: _activation,
        _L.ReLU: _runs,
        _L.LeakyReLU: _runs,
        _L.ELU: _runs,
        _L.Add: _runs,
        _L.Multiply: _runs,
        _L.Dropout: _runs,
        _L.SpatialDropout2D: _runs,
        _L.Identity: _runs,
    }
)


def _layer(layer, details=None):
    kind = type(layer).__name__
    return f"{layer.name} ({kind}{', ' + details if details else ''})"


def _first_convolution(graph, check_padding):
    """The Conv2D 3x3 stride 2 on the 3-channel image that starts the sparse chain."""
    first = next((layer for layer in graph.layers if hasattr(layer, "kernel_size")), None)
    expectation = "the first convolution to be a Conv2D 3x3 with strides 2 on 3 input channels"
    if first is None:
        raise expected_error(expectation, layer=None)
    details = f"kernel_size={first.kernel_size}, strides={first.strides}, padding={first.padding!r}"
    if not isinstance(first, _L.Conv2D):  # Keras' DepthwiseConv2D and SeparableConv2D are not Conv2D.
        raise expected_error(expectation, layer=_layer(first, details))
    channels = first.kernel.shape[2] if first.built else None
    if (
        first.kernel_size != (3, 3)
        or first.strides != (2, 2)
        or first.dilation_rate != (1, 1)
        or first.groups != 1
        or channels != 3
    ):
        raise expected_error(expectation, layer=_layer(first, f"{details}, input channels={channels}"))
    if check_padding and not (first.padding == "valid" and _zero_padding_of(first, graph, 1)):
        raise expected_error(
            f"the first Conv2D to be padded by 1 on every side, ZeroPadding2D(1) then padding='valid' "
            f"({_SAME_PADDING})",
            layer=_layer(first, details),
        )
    return first


def _sparse_chain(graph, first, check_padding):
    """The layers from `first` (excluded) to the GlobalAveragePooling2D layers (excluded) and those poolings."""
    chain, ends, queue = [], [], list(graph.consumers[first])
    inside = {id(first)}
    while queue:
        layer = queue.pop(0)
        if id(layer) in inside:
            continue
        inside.add(id(layer))
        if isinstance(layer, _L.GlobalAveragePooling2D):
            ends.append(layer)
            continue
        check = SPARSE_PATH.lookup(layer)
        if check is None:
            raise expected_error(
                f"only layers XNNPACK runs in its sparse path between the first convolution and "
                f"GlobalAveragePooling2D ({SPARSE_PATH.names()})",
                layer=_layer(layer),
            )
        problem = check(layer, graph, check_padding)
        if problem is not None:
            raise expected_error(problem[0], layer=_layer(layer, problem[1]))
        if not graph.consumers[layer] or any(layer is output for output in graph.outputs):
            raise expected_error(
                "every output to come after a GlobalAveragePooling2D (where XNNPACK's sparse path ends)",
                layer=_layer(layer),
            )
        chain.append(layer)
        queue.extend(graph.consumers[layer])
    if not ends:
        raise expected_error("a GlobalAveragePooling2D after the first convolution", model=graph.name)
    for layer in chain + ends:
        outside = [p for p in graph.producers[layer] if id(p) not in inside]
        if outside:
            raise expected_error(
                "the layers between the first convolution and GlobalAveragePooling2D to read no other input",
                layer=f"{_layer(layer)} reads {_layer(outside[0])}",
            )
    return chain, ends


def _classifiers(graph, poolings):
    """The Dense layers that read a pooling's output directly (Dropout and Identity in between vanish in TFLite)."""
    found, queue = [], [c for pooling in poolings for c in graph.consumers[pooling]]
    while queue:
        layer = queue.pop(0)
        if isinstance(layer, (_L.Dropout, _L.Identity)):
            queue.extend(graph.consumers[layer])
        elif isinstance(layer, _L.Dense) and layer not in found:
            found.append(layer)
    return found


def _check_input(model):
    shapes = [tuple(tensor.shape) for tensor in model.inputs]
    if len(shapes) != 1 or len(shapes[0]) != 4 or None in shapes[0][1:3]:
        raise expected_error(
            "a model with one image input of static height and width, (batch, height, width, channels)",
            input_shapes=shapes if len(shapes) != 1 else shapes[0],
        )


@keras.saving.register_keras_serializable("kcompress")
@dataclasses.dataclass(frozen=True)
class XNNPackSparse(PruningPolicy):
    """Prunes only the 1x1 convolutions that XNNPACK runs with sparse kernels.

    Pass it as ``prune_low_magnitude(model, policy=XNNPackSparse())``, train,
    `strip_pruning`, then ``tflite_export.convert(model, path,
    sparse=True)``. The model must look like a MobileNet: one image input
    of static height and width, a first ``Conv2D`` 3x3 stride 2 on the 3
    channels padded by 1 on every side (``ZeroPadding2D(1)`` then
    ``padding="valid"``), then only 1x1 ``Conv2D`` (pruned), depthwise 3x3
    or 5x5 convolutions (kept dense), batch norms, ReLU-like activations,
    ``Add`` and ``Multiply``, up to ``GlobalAveragePooling2D``. What comes
    after the pooling (the classifier) stays dense. XNNPACK takes the
    sparse path only with more than 2/3 zeros over these 1x1 kernels (and,
    in recent XNNPACK, the classifier's: see `classifier`): use a final
    sparsity of 0.7 or more (0.75 to 0.9 is usual).

    Attributes:
        check_padding: Require the padding XNNPACK's sparse path accepts (1
            on every side for 3x3 convolutions, 2 for 5x5): TensorFlow
            ``"same"`` padding with strides 2 does not give it, and neither
            does an uneven ``ZeroPadding2D``. With ``False`` the policy
            prunes the same layers of models such as
            ``keras.applications.MobileNetV2`` (uneven padding): the file is
            smaller, but XNNPACK runs it dense.
        classifier: Prune the `Dense` layers that read the pooling too.
            Recent XNNPACK takes them into the sparse chain and counts their
            weights in the 2/3 rule: a 1000-class classifier holds a third
            of MobileNetV2's weights, so left dense it can keep the whole
            chain dense. Older XNNPACK runs them dense either way.

    Example:

    >>> from kcompress import pruning
    >>> L = keras.layers
    >>> model = keras.Sequential([
    ...     keras.Input((16, 16, 3)), L.ZeroPadding2D(1), L.Conv2D(8, 3, strides=2),
    ...     L.DepthwiseConv2D(3, padding="same"), L.Conv2D(16, 1, name="pointwise"),
    ...     L.GlobalAveragePooling2D(), L.Dense(2)])
    >>> [layer.name for layer in pruning.XNNPackSparse().select(model)]
    ['pointwise']
    """

    check_padding: bool = True
    classifier: bool = False

    def __post_init__(self):
        for name in ("check_padding", "classifier"):
            if not isinstance(getattr(self, name), bool):
                raise expected_error(f"{name} to be True or False", **{name: getattr(self, name)})

    def select(self, model):
        """Returns the 1x1 `Conv2D` layers of `model` in XNNPACK's sparse chain (and, with `classifier`, its Dense).

        Raises:
            ValueError: `model` is not a Sequential or functional model
                whose graph XNNPACK can run sparse; the message names the
                first layer in the way.
        """
        graph = LayerGraph(model)
        _check_input(model)
        first = _first_convolution(graph, self.check_padding)
        chain, poolings = _sparse_chain(graph, first, self.check_padding)
        selected = [layer for layer in chain if isinstance(layer, _L.Conv2D)]
        return selected + (_classifiers(graph, poolings) if self.classifier else [])

    def get_config(self):
        return dataclasses.asdict(self)
