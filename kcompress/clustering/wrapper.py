"""`ClusterWeights`: a layer wrapper whose kernels are shared centroids."""

import keras
import numpy as np
from keras import ops

from kcompress._errors import check_int, expected_error
from kcompress._stateless import call_with_values
from kcompress.clustering import clusterable, kmeans


def _sum_gradient(centroids, assignments, k):
    """Each centroid gets the sum of its members' gradients (plain `gather`)."""
    return centroids


def _mean_gradient(centroids, assignments, k):
    """Each centroid gets the mean of its members' gradients, same value."""
    ids = ops.reshape(assignments, (-1,))
    # A segment sum of ones, not `bincount`: its length is static (JAX's jit needs it).
    counts = ops.segment_sum(ops.ones(ops.shape(ids), centroids.dtype), ids, num_segments=k)
    scale = 1.0 / ops.maximum(counts, 1.0)
    return centroids * scale + ops.stop_gradient(centroids - centroids * scale)


# How the gradients of a cluster's members add up into its centroid (tfmot's
# `cluster_gradient_aggregation`). With Adam both train alike; with SGD "mean"
# keeps the step of a large cluster the size of a single weight's.
GRADIENT_AGGREGATIONS = {"sum": _sum_gradient, "mean": _mean_gradient}


def initial_clusters(values, number_of_clusters, init, iterations, seed, keep_zeros):
    """``(centroids, assignments)`` for one weight; with `keep_zeros`, centroid 0 is 0.

    Example:

    >>> centroids, assignments = initial_clusters(
    ...     np.array([0.0, 0.0, 1.0, 1.1, 3.0]), 3, "linear", 10, 0, keep_zeros=True)
    >>> [round(float(c), 2) for c in centroids], assignments.tolist()
    ([0.0, 1.05, 3.0], [0, 0, 1, 1, 2])
    """
    values = np.asarray(values, np.float32)
    if not keep_zeros:
        return kmeans.kmeans(values, number_of_clusters, init, iterations, seed)
    nonzero = values != 0
    centroids = np.zeros(number_of_clusters, np.float32)
    assignments = np.zeros(values.shape, np.int32)
    if nonzero.any():
        rest, members = kmeans.kmeans(values[nonzero], number_of_clusters - 1, init, iterations, seed)
        centroids[1:] = rest
        assignments[nonzero] = members + 1
    return centroids, assignments


def _raw_value(variable):
    """The variable's value in its own dtype (read under a mixed-precision policy, `value` is autocast)."""
    return ops.cast(variable.value, variable.dtype)


@keras.saving.register_keras_serializable(package="kcompress")
class ClusterWeights(keras.layers.Wrapper):
    """Trains `layer` with each kernel made of `number_of_clusters` shared values.

    At build, each clustered weight is split by 1-D k-means into trainable
    centroids (``number_of_clusters`` floats) and non-trainable int32
    assignments (one per weight entry). The layer then runs with the kernel
    ``take(centroids, assignments)`` (through a `keras.StatelessScope`), so
    `fit` trains the centroids: each gets the gradients of its members. The
    layer's own kernel is frozen (non-trainable) until `strip_clustering`
    writes the clustered values into it.

    The assignments are fixed after the initial clustering (as in Deep
    Compression's weight sharing). tfmot instead keeps training the original
    float weights and re-assigns them to the nearest centroid on every step;
    here the kernel *is* its centroids, so re-assigning would be a no-op, and
    the model holds no second trainable copy of each kernel.

    Args:
        layer: The layer to cluster: one of `clusterable.CLUSTERABLE`
            (Dense, EinsumDense, Conv1D/2D/3D, DepthwiseConv2D,
            SeparableConv2D, Embedding and its subclasses).
        number_of_clusters: Number of centroids per weight, >= 2.
        init: Centroid initialization: ``"kmeans++"``, ``"linear"`` (evenly
            spaced over the weight's range) or ``"density"`` (at quantiles).
        iterations: Lloyd iterations after the initialization.
        gradient_aggregation: ``"sum"`` (default, as `gather` gives) or
            ``"mean"``: how members' gradients reach their centroid.
        keep_zeros: Names of the weights whose exact zeros (a pruned model)
            stay zero: one centroid is pinned at 0 for them. None: the weights
            that have zeros when the wrapper is made.
        seed: Seed of the k-means++ draws.
        weight_names: Which weights of the layer to cluster; by default all
            the family's kernels.
        **kwargs: Base layer arguments (`name`, ...).

    Example:

    >>> layer = ClusterWeights(keras.layers.Dense(8), number_of_clusters=4)
    >>> model = keras.Sequential([keras.Input((16,)), layer])
    >>> model.compile("adam", "mse")
    >>> _ = model.fit(np.ones((8, 16)), np.ones((8, 8)), verbose=0)
    >>> len(np.unique(keras.ops.convert_to_numpy(layer.clustered_values()[0])))
    4
    """

    def __init__(
        self,
        layer,
        number_of_clusters=16,
        init="kmeans++",
        iterations=10,
        gradient_aggregation="sum",
        keep_zeros=None,
        seed=0,
        weight_names=None,
        **kwargs,
    ):
        if not isinstance(layer, keras.layers.Layer):
            raise expected_error("a keras.layers.Layer to cluster", layer=layer)
        known = clusterable.lookup(layer)
        if known is None:
            raise expected_error(
                f"a layer kcompress can cluster ({clusterable.supported_names()})",
                layer=f"{layer.name} ({type(layer).__name__})",
            )
        kwargs.setdefault("name", f"cluster_{layer.name}")
        super().__init__(layer, **kwargs)
        self.number_of_clusters = check_int("number_of_clusters", number_of_clusters, minimum=2)
        self.init = kmeans.check_init(init)
        self.iterations = check_int("iterations", iterations, minimum=0)
        if gradient_aggregation not in GRADIENT_AGGREGATIONS:
            raise expected_error(
                f"gradient_aggregation in {tuple(GRADIENT_AGGREGATIONS)}", gradient_aggregation=gradient_aggregation
            )
        self.gradient_aggregation = gradient_aggregation
        self.seed = check_int("seed", seed, minimum=0)
        weight_names = tuple(weight_names) if weight_names else known
        if any(name not in known for name in weight_names):
            raise expected_error(f"weight_names of {type(layer).__name__} among {known}", weight_names=weight_names)
        self.weight_names = weight_names
        if keep_zeros is None:
            keep_zeros = [name for name in weight_names if layer.built and self._has_zeros(name)]
        if any(name not in weight_names for name in keep_zeros):
            raise expected_error(f"keep_zeros among the clustered weights {weight_names}", keep_zeros=keep_zeros)
        self.keep_zeros = list(keep_zeros)

    def _own_variables(self):
        own = {v.name: v for v in self.layer._trainable_variables}
        own.update({v.name: v for v in self.layer._non_trainable_variables})
        return own

    def _has_zeros(self, name):
        variable = self._own_variables().get(name)
        return variable is not None and bool(np.any(keras.ops.convert_to_numpy(variable) == 0))

    @property
    def clustered_variables(self):
        """The wrapped layer's variables this wrapper clusters, in order.

        Looked up on each access rather than stored, so the wrapper does not
        track (and save) the layer's variables as its own.
        """
        own = self._own_variables()
        return [own[name] for name in self.weight_names]

    def build(self, input_shape=None):
        if not self.layer.built:
            self.layer.build(input_shape)
        own = self._own_variables()
        self.centroids = []
        self.assignments = []
        for name in self.weight_names:
            variable = own.get(name)
            if variable is None:
                raise expected_error(
                    f"layer '{self.layer.name}' to have a weight named '{name}'", weight_names=self.weight_names
                )
            centroids, assignments = initial_clusters(
                keras.ops.convert_to_numpy(variable),
                self.number_of_clusters,
                self.init,
                self.iterations,
                self.seed,
                keep_zeros=name in self.keep_zeros,
            )
            self.centroids.append(
                self.add_weight(
                    name=f"{name}_centroids",
                    shape=(self.number_of_clusters,),
                    dtype=variable.dtype,
                    initializer="zeros",
                    trainable=True,
                )
            )
            self.centroids[-1].assign(centroids)
            self.assignments.append(
                self.add_weight(
                    name=f"{name}_assignments",
                    shape=variable.shape,
                    dtype="int32",
                    initializer="zeros",
                    trainable=False,
                    aggregation="only_first_replica",
                )
            )
            self.assignments[-1].assign(assignments)
            # The kernel is now `take(centroids, assignments)`: it gets no gradient.
            variable.trainable = False
        self.built = True

    def clustered_values(self):
        """The value each clustered weight runs with: its centroids, gathered."""
        aggregate = GRADIENT_AGGREGATIONS[self.gradient_aggregation]
        values = []
        for name, centroids, assignments in zip(self.weight_names, self.centroids, self.assignments):
            table = aggregate(_raw_value(centroids), assignments.value, self.number_of_clusters)
            if name in self.keep_zeros:
                pinned = np.ones(self.number_of_clusters, keras.backend.standardize_dtype(centroids.dtype))
                pinned[0] = 0
                table = table * pinned
            values.append(ops.take(table, assignments.value))
        return values

    def call(self, inputs, *args, training=None, **kwargs):
        mapping = list(zip(self.clustered_variables, self.clustered_values()))
        return call_with_values(
            lambda: self.layer(inputs, *args, training=training, **kwargs), mapping, self.layer.variables
        )

    def compute_output_spec(self, *args, **kwargs):
        return self.layer.compute_output_spec(*args, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "number_of_clusters": self.number_of_clusters,
                "init": self.init,
                "iterations": self.iterations,
                "gradient_aggregation": self.gradient_aggregation,
                "keep_zeros": list(self.keep_zeros),
                "seed": self.seed,
                "weight_names": list(self.weight_names),
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)  # `Wrapper.from_config` would pop "layer" from the caller's dict.
        config["layer"] = keras.saving.deserialize_keras_object(config["layer"], custom_objects=custom_objects)
        return cls(**config)


def clustering_wrappers(model):
    """All `ClusterWeights` layers in `model`, at any depth.

    Example:

    >>> model = keras.Sequential([keras.Input((4,)), ClusterWeights(keras.layers.Dense(2), 2)])
    >>> len(clustering_wrappers(model))
    1
    """
    return [layer for layer in model._flatten_layers() if isinstance(layer, ClusterWeights)]
