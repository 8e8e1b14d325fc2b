"""Feed-forward units of a transformer layer: magnitude, removal and masking.

Unit ``j`` owns column ``j`` of the intermediate kernel (and entry ``j`` of
its bias) and row ``j`` of the output kernel.
"""

import numpy as np
from keras import ops


def _numpy(variable):
    return ops.convert_to_numpy(variable.value)


def magnitude(encoder):
    """Per-unit L2 norm of the unit's intermediate kernel column and output kernel row.

    Example:

    >>> import numpy as np
    >>> from kcompress.structured.layers import PrunedTransformerEncoder
    >>> encoder = PrunedTransformerEncoder(intermediate_dim=6, num_heads=2)
    >>> _ = encoder(np.zeros((1, 3, 4), "float32"))
    >>> magnitude(encoder).shape
    (6,)
    """
    inner = _numpy(encoder._feedforward_intermediate_dense.kernel)
    outer = _numpy(encoder._feedforward_output_dense.kernel)
    return np.sqrt(np.sum(inner**2, axis=0) + np.sum(outer**2, axis=1))


def copy_kept(source, target, keep):
    """Copies the kept units of `source`'s feed-forward block into `target`'s."""
    keep = list(keep)
    values = [_numpy(v) for v in source._feedforward_intermediate_dense.weights]
    target._feedforward_intermediate_dense.set_weights([values[0][:, keep]] + [bias[keep] for bias in values[1:]])
    values = [_numpy(v) for v in source._feedforward_output_dense.weights]
    target._feedforward_output_dense.set_weights([values[0][keep]] + values[1:])


def masks(encoder, keep):
    """``[(variable, 0/1 array)]``: multiplying each variable by its array silences every unit not in `keep`."""
    kernel = encoder._feedforward_output_dense.kernel
    mask = np.zeros(tuple(kernel.shape), "float32")
    mask[list(keep)] = 1.0
    return [(kernel, mask)]
