"""Teacher outputs computed once per example and reused every epoch.

Examples are keyed by a fingerprint of their input tensors, not by position,
so a dataset may be reshuffled (or batched differently) between epochs and
each example still finds its own teacher outputs. During training the
lookup runs inside the train step: a batch whose examples are all cached
reads them; a batch with any new example runs the teacher instead, so the
losses are the same as without a cache.

Backends: the keys are TensorFlow fingerprints computed on the host, and the
stored tensors stay on the host. Under TensorFlow the lookup is a
`tf.lookup.StaticHashTable` in the traced step; under JAX it is a
`jax.pure_callback` to the same host arrays (so the step still compiles with
XLA). Other backends raise a clear error when a cache is used.
"""

import hashlib
import json
import os

import keras
import numpy as np
import tensorflow as tf

from kcompress._atomic import write_atomic
from kcompress._errors import expected_error

_STORAGE_DTYPES = ("float32", "float16")
# Backends whose traced train step can read the host-side cache.
BACKENDS = ("tensorflow", "jax")
_FILE = "teacher_cache.npz"
_META = "teacher_cache.json"


def example_keys(inputs):
    """Returns one int64 fingerprint per example of a batch of inputs.

    Integer and boolean tensors are hashed as int64 and floats as float32,
    so the same example gives the same key whether it arrives as NumPy int64
    or as an int32 tensor.

    Example:

    >>> import numpy as np
    >>> a = example_keys({"ids": np.array([[1, 2], [3, 4]])})
    >>> b = example_keys({"ids": np.array([[3, 4]], "int32")})
    >>> int(a[1]) == int(b[0]), int(a[0]) == int(a[1])
    (True, False)
    """
    parts = []
    for tensor in tf.nest.flatten(inputs):
        tensor = tf.convert_to_tensor(tensor)
        if tensor.dtype != tf.string:
            canonical = tf.float32 if tensor.dtype.is_floating else tf.int64
            tensor = tf.reshape(tf.cast(tensor, canonical), (tf.shape(tensor)[0], -1))
        parts.append(tf.fingerprint(tensor))
    combined = parts[0] if len(parts) == 1 else tf.fingerprint(tf.concat(parts, axis=1))
    return tf.reshape(tf.bitcast(combined, tf.int64), (-1,))


class TeacherCache:
    """Stores teacher outputs per example, in memory and optionally on disk.

    Args:
        directory: Optional folder. The filled cache is saved there
            (atomically) with a fingerprint of the teacher's weights and of
            what is stored; a later run with the same teacher loads it instead
            of running the teacher again.
        storage_dtype: ``"float32"`` (exact) or ``"float16"`` (half the
            memory; teacher tensors are rounded to float16).

    Example:

    >>> cache = TeacherCache(storage_dtype="float16")
    >>> cache.size
    0
    """

    def __init__(self, directory=None, storage_dtype="float32"):
        if storage_dtype not in _STORAGE_DTYPES:
            raise expected_error(f"storage_dtype in {_STORAGE_DTYPES}", storage_dtype=storage_dtype)
        self.directory = None if directory is None else os.fspath(directory)
        self.storage_dtype = storage_dtype
        self._keys = np.zeros((0,), np.int64)
        self._values = {}
        self._signature = None
        self._table = None
        self._sorted = None  # (keys it was made from, sorted keys, order): `gather`'s index.

    @property
    def size(self):
        """Number of cached examples."""
        return int(self._keys.shape[0])

    @property
    def nbytes(self):
        """Memory used by the stored teacher tensors, in bytes."""
        return int(sum(value.nbytes for value in self._values.values()))

    def get_config(self):
        return {"directory": self.directory, "storage_dtype": self.storage_dtype}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def fill(self, forward, batches, signature, total=None, verbose=1):
        """Runs `forward` on every batch whose examples are not all cached.

        Args:
            forward: ``forward(x) -> (keys, dict of tensors)``, usually a
                `tf.function`.
            batches: Iterable of input batches ``x``.
            signature: String identifying the teacher and what is stored;
                a cache filled under another signature is discarded.
            total: Number of batches, for the progress bar.
            verbose: 0 silences the progress bar.

        Returns:
            Number of examples added.
        """
        if signature != self._signature:
            self._keys, self._values, self._table = np.zeros((0,), np.int64), {}, None
            self._signature = signature
            self._load()
        known = set(self._keys.tolist())
        added_keys, added_values = [], {}
        progress = keras.utils.Progbar(total, verbose=verbose, unit_name="batch") if verbose else None
        for step, x in enumerate(batches, start=1):
            keys = example_keys(x).numpy()
            if not all(key in known for key in keys.tolist()):
                keys, values = forward(x)
                keys = keys.numpy()
                fresh = []
                for i, key in enumerate(keys.tolist()):
                    if key not in known:
                        known.add(key)
                        fresh.append(i)
                added_keys.append(keys[fresh])
                for name, value in values.items():
                    added_values.setdefault(name, []).append(np.asarray(value)[fresh].astype(self.storage_dtype))
            if progress is not None:
                progress.update(step)
        added = int(sum(len(keys) for keys in added_keys))
        if added:
            self._keys = np.concatenate([self._keys, *added_keys])
            for name, chunks in added_values.items():
                previous = [self._values[name]] if name in self._values else []
                self._values[name] = np.concatenate(previous + chunks)
            self._table = None
            self._save()
        return added

    def lookup(self, keys):
        """Returns ``(all_found, dict of float32 tensors)`` for a batch of keys.

        TensorFlow only: runs inside a traced train step; the table and the
        stored tensors stay on the host. `find` works under every supported
        backend.
        """
        if self._table is None:
            self._table = _Table(self._keys, self._values)
        return self._table.lookup(keys)

    def find(self, inputs):
        """Returns ``(all_found, dict of float32 tensors)`` for a batch of inputs.

        Runs inside the backend's traced train step: under TensorFlow a hash
        table lookup of `example_keys`, under JAX a `jax.pure_callback` that
        computes the keys and gathers the rows on the host.

        Args:
            inputs: A batch of model inputs (tensor, or nest of tensors).

        Raises:
            ValueError: Under a backend other than TensorFlow or JAX.

        Example:

        >>> import numpy as np
        >>> cache = TeacherCache()
        >>> x = np.arange(4, dtype="float32").reshape(2, 2)
        >>> cache.fill(lambda x: (example_keys(x), {"logits": 2 * x}), [x], "teacher", verbose=0)
        2
        >>> found, values = cache.find(x[::-1])
        >>> bool(found), np.asarray(values["logits"]).tolist()
        (True, [[4.0, 6.0], [0.0, 2.0]])
        """
        backend = check_backend()
        if backend == "tensorflow":
            return self.lookup(example_keys(inputs))
        return _host_find(self, inputs)

    def gather(self, keys):
        """Host-side lookup: ``(all_found, dict of float32 arrays)`` for int64 keys.

        Example:

        >>> import numpy as np
        >>> found, values = TeacherCache().gather(np.array([7], "int64"))
        >>> bool(found), values
        (False, {})
        """
        keys = np.asarray(keys, np.int64)
        if self._sorted is None or self._sorted[0] is not self._keys:
            order = np.argsort(self._keys)
            self._sorted = (self._keys, self._keys[order], order)
        _, sorted_keys, order = self._sorted
        position = np.minimum(np.searchsorted(sorted_keys, keys), max(self.size - 1, 0))
        rows = order[position] if self.size else np.zeros(keys.shape, np.int64)
        found = bool(self.size) and bool(np.all(self._keys[rows] == keys))
        return found, {name: value[rows].astype(np.float32) for name, value in self._values.items()}

    def _save(self):
        if self.directory is None:
            return
        os.makedirs(self.directory, exist_ok=True)
        arrays = {"keys": self._keys, **{f"value/{name}": value for name, value in self._values.items()}}
        write_atomic(os.path.join(self.directory, _FILE), lambda f: np.savez(f, **arrays))
        meta = json.dumps({"signature": self._signature, "storage_dtype": self.storage_dtype}).encode()
        write_atomic(os.path.join(self.directory, _META), lambda f: f.write(meta))

    def _load(self):
        if self.directory is None or not os.path.isfile(os.path.join(self.directory, _META)):
            return
        with open(os.path.join(self.directory, _META), encoding="utf-8") as f:
            meta = json.load(f)
        if meta.get("signature") != self._signature or meta.get("storage_dtype") != self.storage_dtype:
            return
        with np.load(os.path.join(self.directory, _FILE)) as data:
            self._keys = data["keys"]
            self._values = {name[len("value/") :]: data[name] for name in data.files if name.startswith("value/")}


def check_backend():
    """Returns the Keras backend, or raises if a teacher cache cannot run under it.

    Example:

    >>> check_backend() in BACKENDS
    True
    """
    backend = keras.backend.backend()
    if backend not in BACKENDS:
        raise expected_error(f"a Keras backend in {BACKENDS} for a teacher cache (or cache=None)", backend=backend)
    return backend


def teacher_pass(teacher_forward, variables):
    """``forward(inputs) -> (example keys, teacher_forward(inputs))``, compiled for the backend: what fills a cache.

    Under TensorFlow a `tf.function`; under JAX a `jax.jit` of a stateless
    call that maps each of `variables` (everything `teacher_forward` reads)
    to its value.

    Example:

    >>> import numpy as np
    >>> weight = keras.Variable(np.float32(2.0))
    >>> forward = teacher_pass(lambda x: {"logits": x * weight.value}, [weight])
    >>> keys, values = forward(np.ones((2, 3), "float32"))
    >>> tuple(keys.shape), np.asarray(values["logits"]).tolist()
    ((2,), [[2.0, 2.0, 2.0], [2.0, 2.0, 2.0]])
    """
    if check_backend() == "tensorflow":
        return tf.function(lambda inputs: (example_keys(inputs), teacher_forward(inputs)))
    import jax

    def stateless(values, inputs):
        # Maps every variable the teacher reads: a nested StatelessScope does not see the outer one.
        with keras.StatelessScope(state_mapping=list(zip(variables, values))):
            return teacher_forward(inputs)

    compiled = jax.jit(stateless)

    def forward(inputs):
        inputs = keras.tree.map_structure(np.asarray, inputs)
        return example_keys(inputs), compiled([variable.value for variable in variables], inputs)

    return forward


def _host_find(cache, inputs):
    """`TeacherCache.find` under JAX: the keys and rows are computed on the host."""
    import jax

    flat = keras.tree.flatten(inputs)
    batch = flat[0].shape[0]
    shapes = {
        name: jax.ShapeDtypeStruct((batch, *value.shape[1:]), np.float32) for name, value in cache._values.items()
    }

    def host(*arrays):
        found, values = cache.gather(example_keys(keras.tree.pack_sequence_as(inputs, arrays)).numpy())
        return np.bool_(found), values

    return jax.pure_callback(host, (jax.ShapeDtypeStruct((), np.bool_), shapes), *flat)


class _Table:
    """A hash table from example key to row, and the rows, on the host."""

    def __init__(self, keys, values):
        with tf.init_scope(), tf.device("/cpu:0"):
            self.device = "/cpu:0"
            initializer = tf.lookup.KeyValueTensorInitializer(
                tf.constant(keys, tf.int64), tf.range(len(keys), dtype=tf.int64)
            )
            self.table = tf.lookup.StaticHashTable(initializer, default_value=-1)
            self.values = {name: tf.constant(value) for name, value in values.items()}

    def lookup(self, keys):
        with tf.device(self.device):
            rows = self.table.lookup(keys)
            found = tf.reduce_all(rows >= 0)
            rows = tf.maximum(rows, 0)
            return found, {name: tf.cast(tf.gather(value, rows), tf.float32) for name, value in self.values.items()}


def teacher_signature(teacher, names):
    """A fingerprint of the teacher's weights and of the stored tensor names."""
    digest = hashlib.sha256()
    digest.update(json.dumps(sorted(names)).encode())
    for weight in teacher.weights:
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(weight))
        digest.update(weight.path.encode())
        digest.update(str(value.shape).encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def input_batches(data, batch_size, steps):
    """Returns ``(iterable of input batches, number of batches or None)``."""
    if isinstance(data, tf.data.Dataset):
        if data.cardinality() == tf.data.INFINITE_CARDINALITY:
            if steps is None:
                raise expected_error(
                    "steps_per_epoch (or steps) with an infinite dataset, to know what to cache", steps=None
                )
            data = data.take(steps)
        dataset = data.map(lambda *element: keras.utils.unpack_x_y_sample_weight(element)[0])
    else:
        x = data[0] if isinstance(data, tuple) else data
        try:
            dataset = tf.data.Dataset.from_tensor_slices(x).batch(batch_size)
        except (TypeError, ValueError) as error:
            raise expected_error(
                "a tf.data.Dataset or input arrays (or a dict of arrays) to cache the teacher on",
                x=type(x).__name__,
            ) from error
    cardinality = int(dataset.cardinality())
    return dataset, (cardinality if cardinality >= 0 else None)
