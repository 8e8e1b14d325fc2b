"""`LayerGraph`: who feeds whom in a Sequential or functional model, for graph-aware pruning policies."""

import collections

import keras

from kcompress import _surgery
from kcompress._errors import expected_error


class LayerGraph:
    """The layers of a Sequential or functional model with their producers and consumers.

    Built from the model's own nodes (a Sequential model's inner functional
    graph), so a layer called twice has the producers of both calls.

    Args:
        model: A built `keras.Sequential` or functional `keras.Model`.

    Attributes:
        layers: The layers in an order where producers come first (inputs first).
        producers: Layer -> the layers whose outputs it reads.
        consumers: Layer -> the layers that read its outputs.
        inputs: The model's input layers.
        outputs: The layers that produce the model's outputs.
        name: The model's name.

    Example:

    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="a"),
    ...                           keras.layers.Dense(2, name="b")])
    >>> graph = LayerGraph(model)
    >>> [layer.name for layer in graph.producers[model.get_layer("b")]]
    ['a']
    """

    def __init__(self, model):
        if not _surgery.is_plain_graph_model(model):
            raise expected_error(
                "a Sequential or functional model (its graph shows which layers feed which)",
                model=f"{model.name} ({type(model).__name__})",
            )
        graph = getattr(model, "_functional", None) if isinstance(model, keras.Sequential) else model
        if graph is None:
            raise expected_error("a Sequential model built with an Input", model=model.name)
        self.name = model.name
        self.producers = collections.defaultdict(list)
        self.consumers = collections.defaultdict(list)
        self.layers = []
        seen = set()
        for depth in sorted(graph._nodes_by_depth, reverse=True):
            for node in graph._nodes_by_depth[depth]:
                layer = node.operation
                if id(layer) not in seen:
                    seen.add(id(layer))
                    self.layers.append(layer)
                for parent in node.parent_nodes:
                    self.producers[layer].append(parent.operation)
                    self.consumers[parent.operation].append(layer)
        self.inputs = [tensor._keras_history.operation for tensor in graph.inputs]
        self.outputs = [tensor._keras_history.operation for tensor in graph.outputs]
