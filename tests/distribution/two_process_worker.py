"""One process of the two-process test: prunes, clusters and distills tiny MLPs data-parallel.

Run as ``KERAS_BACKEND=jax python -m tests.distribution.two_process_worker ADDRESS PROCESS_ID``;
prints one JSON line: a digest of every weight and mask after each technique, and the data it saw.
"""

import hashlib
import json
import sys


def digest(variables):
    import numpy as np

    return hashlib.sha1(b"".join(np.asarray(v.value).tobytes() for v in variables)).hexdigest()


def main(address, process_id):
    import keras
    import numpy as np

    from kcompress import clustering, distribution, pruning
    from kcompress.distillation import Distiller
    from tests.helpers import mlp

    distribution.join_processes(address, num_processes=2, process_id=process_id)
    rng = np.random.default_rng(0)
    x_all = rng.standard_normal((128, 16)).astype("float32")
    y_all = rng.integers(0, 2, 128)
    x, y = distribution.process_part(x_all, y_all)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    result = {"process": process_id, "is_chief": distribution.is_chief(), "data": hashlib.sha1(x.tobytes()).hexdigest()}

    keras.utils.set_random_seed(0)
    pruned = pruning.prune_low_magnitude(mlp(), pruning.PolynomialDecay(0.0, 0.75, 0, 6, frequency=2))
    pruned.compile("adam", loss)
    pruned.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[pruning.UpdatePruningStep()])
    masks = [m for w in pruning.pruning_wrappers(pruned) for m in w.masks]
    result["pruning"] = digest(pruned.variables)
    result["masks"] = digest(masks)
    result["sparsity"] = [float(1 - np.mean(np.asarray(m.value))) for m in masks]

    keras.utils.set_random_seed(0)
    clustered = clustering.cluster_weights(mlp(), number_of_clusters=4)
    clustered.compile("adam", loss)
    clustered.fit(x, y, batch_size=8, epochs=1, verbose=0)
    result["clustering"] = digest(clustered.variables)
    result["unique"] = sorted(clustering.unique_values(clustering.strip_clustering(clustered)).values())

    keras.utils.set_random_seed(0)
    distiller = Distiller(mlp(hidden=32), mlp(hidden=4), alpha=0.8)
    distiller.compile(optimizer="adam")
    distiller.fit(x, y, batch_size=8, epochs=1, verbose=0)
    result["distillation"] = digest(distiller.student.variables)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
