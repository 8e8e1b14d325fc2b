"""Makes every `.keras` file kcompress writes loadable after a bare ``import kcompress``.

Keras finds a custom class by its registered name (``"kcompress>PruneLowMagnitude"``)
in `keras.saving.get_custom_objects()`, and a class is put there when the module
that defines it runs. kcompress' subpackages load lazily (``import kcompress``
must not import TensorFlow: the ``kcompress`` command starts from it), so
nothing would be registered when `keras.models.load_model` runs.

Instead, `install` (called by ``kcompress/__init__.py``) puts a `_Deferred`
placeholder under each name in `SERIALIZABLES` into Keras' public registry as
soon as keras is imported: at once if it already is, else right after
``keras/__init__.py`` has run, through a `sys.meta_path` finder that then leaves. The
placeholder imports no kcompress module then, so it cannot meet a kcompress
module that is still half-initialized (kcompress' own modules import keras).
It imports the class's module on first use, during deserialization, and
hands the config to the real class; that import also registers the real
class in its place. See ``docs/loading.md``.
"""

import importlib
import sys

# Registered name -> the module whose import registers it. The test
# `tests/test_loading.py::test_table_lists_every_registered_class` keeps this in step.
SERIALIZABLES = {
    "kcompress>LayersSwappedInPlace": "kcompress._swaps",
    "kcompress>ClusterWeights": "kcompress.clustering.wrapper",
    "kcompress>AttentionKL": "kcompress.distillation.losses",
    "kcompress>FoldedLayer": "kcompress.quantization.folding",
    "kcompress>Distiller": "kcompress.distillation.distiller",
    "kcompress>EmbeddingMSE": "kcompress.distillation.losses",
    "kcompress>HardLabelCE": "kcompress.distillation.losses",
    "kcompress>HiddenStateMSE": "kcompress.distillation.losses",
    "kcompress>LayerMap": "kcompress.distillation.layer_map",
    "kcompress>SoftLabelKL": "kcompress.distillation.losses",
    "kcompress>Block": "kcompress.pruning.masks",
    "kcompress>ConstantSparsity": "kcompress.pruning.schedules",
    "kcompress>FunctionSchedule": "kcompress.pruning.schedules",
    "kcompress>NM": "kcompress.pruning.masks",
    "kcompress>PolynomialDecay": "kcompress.pruning.schedules",
    "kcompress>PruneLowMagnitude": "kcompress.pruning.wrapper",
    "kcompress>PruningSummaries": "kcompress.pruning.callbacks",
    "kcompress>Unstructured": "kcompress.pruning.masks",
    "kcompress>UpdatePruningStep": "kcompress.pruning.callbacks",
    "kcompress>XNNPackSparse": "kcompress.pruning.xnnpack",
    "kcompress>ActivationQuantizer": "kcompress.quantization.quantizers",
    "kcompress>QuantizationConfig": "kcompress.quantization.config",
    "kcompress>QuantizeAffine": "kcompress.quantization.affine",
    "kcompress>QuantizeAttention": "kcompress.quantization.attention",
    "kcompress>QuantizeConvBatchNorm": "kcompress.quantization.conv_batch_norm",
    "kcompress>QuantizeEmbedding": "kcompress.quantization.embedding",
    "kcompress>QuantizeKernel": "kcompress.quantization.kernel",
    "kcompress>QuantizeLayerNorm": "kcompress.quantization.layer_norm",
    "kcompress>QuantizeOperation": "kcompress.quantization.operation",
    "kcompress>QuantizeOutput": "kcompress.quantization.output",
    "kcompress>QuantizeSeparableConv": "kcompress.quantization.kernel",
    "kcompress>QuantizeTransformerEncoder": "kcompress.quantization.encoder",
    "kcompress>PrunedBertBackbone": "kcompress.structured.backbone",
    "kcompress>PrunedTransformerEncoder": "kcompress.structured.layers",
}


class _Deferred:
    """Stands for a kcompress class in Keras' registry until its module is imported.

    Keras calls ``registry[name].from_config(config)``; this imports the
    module (which registers the real class under the same name) and returns
    the real ``from_config(config)``. Calling it builds an instance the same way.

    Args:
        name: The registered name, ``"kcompress>ClassName"``.
        module: The module that defines and registers the class.
    """

    def __init__(self, name, module):
        self.name = name
        self.module = module

    def resolve(self):
        """Imports the module and returns the class registered under `name`.

        Raises:
            ValueError: The module does not register `name` (`SERIALIZABLES` is stale).
        """
        importlib.import_module(self.module)
        import keras

        cls = keras.saving.get_custom_objects().get(self.name)
        if cls is None or isinstance(cls, _Deferred):
            raise ValueError(
                f"Expected module {self.module} to register a class as {self.name!r} (see "
                f"kcompress._registration.SERIALIZABLES). Received: module={self.module}, which does not"
            )
        return cls

    def from_config(self, config, custom_objects=None):
        """Builds the real class from `config` (Keras' deserialization entry point)."""
        import inspect  # Here, not at the top: `import kcompress` stays a few milliseconds.

        cls = self.resolve()
        if custom_objects is not None and "custom_objects" in inspect.signature(cls.from_config).parameters:
            return cls.from_config(config, custom_objects=custom_objects)
        return cls.from_config(config)

    def __call__(self, *args, **kwargs):
        return self.resolve()(*args, **kwargs)

    def __repr__(self):
        return f"<kcompress class {self.name!r}, loaded from {self.module} on first use>"


def register_deferred(keras_module):
    """Puts a `_Deferred` under every name of `SERIALIZABLES` not yet registered.

    Args:
        keras_module: The imported ``keras`` module.
    """
    registry = keras_module.saving.get_custom_objects()
    for name, module in SERIALIZABLES.items():
        registry.setdefault(name, _Deferred(name, module))


class _RegisterAfterExec:
    """Wraps keras' own loader: runs ``keras/__init__.py``, then `register_deferred`."""

    def __init__(self, loader):
        self.loader = loader

    def __getattr__(self, name):  # Anything else (get_resource_reader, is_package, ...) is keras' loader's.
        return getattr(self.loader, name)

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        _remove_finder()
        self.loader.exec_module(module)
        module.__loader__ = self.loader
        if getattr(module, "__spec__", None) is not None:
            module.__spec__.loader = self.loader
        register_deferred(module)


class _KerasImportFinder:
    """`sys.meta_path` finder: finds keras as the other finders would, and wraps its loader.

    It leaves `sys.meta_path` when keras is imported, not when it is found: a
    ``importlib.util.find_spec("keras")`` that only asks whether keras is
    installed does not use it up.
    """

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "keras":
            return None
        for finder in list(sys.meta_path):
            if isinstance(finder, _KerasImportFinder):
                continue
            find_spec = getattr(finder, "find_spec", None)
            spec = find_spec(fullname, path, target) if find_spec else None
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _RegisterAfterExec(spec.loader)
                return spec
        return None


def _remove_finder():
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _KerasImportFinder)]


def install():
    """Registers kcompress' classes with keras now, or as soon as keras is imported."""
    keras_module = sys.modules.get("keras")
    if keras_module is not None and hasattr(keras_module, "saving"):
        register_deferred(keras_module)
    elif not any(isinstance(finder, _KerasImportFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _KerasImportFinder())
