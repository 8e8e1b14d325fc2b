import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from kcompress.distillation import Distiller, TeacherCache, example_keys
from tests.distillation.conftest import labels, tokens


def make_distiller(teacher, student, cache):
    distiller = Distiller(teacher, student, alpha=0.5, hidden="uniform", attention="uniform", cache=cache)
    distiller.compile(optimizer="adam")
    return distiller


def test_keys_are_per_example_and_dtype_independent():
    x = tokens(6)
    keys = example_keys(x).numpy()
    assert len(set(keys.tolist())) == 6
    reordered = {name: value[::-1].astype("int64") for name, value in x.items()}
    np.testing.assert_array_equal(example_keys(reordered).numpy(), keys[::-1])
    changed = {name: value.copy() for name, value in x.items()}
    changed["padding_mask"][0, 0] = 0
    assert example_keys(changed).numpy()[0] != keys[0]


def test_cached_losses_equal_uncached_losses(teacher, student):
    x, y = tokens(16), labels(16)
    cached = make_distiller(teacher, student, cache=True)
    assert cached.cache_teacher(x, batch_size=8, verbose=0) == 16
    plain = make_distiller(teacher, student, cache=None)
    for name, projection in cached.projections.items():
        plain.projections[name].set_weights(projection.get_weights())
    batch = ({k: v[3:11] for k, v in x.items()}, y[3:11])  # Straddles the cached batches.
    np.testing.assert_allclose(
        float(cached.compute_loss(*batch, training=False)), float(plain.compute_loss(*batch, training=False)), rtol=1e-6
    )


def test_cache_is_used_after_shuffling(teacher, student):
    x, y = tokens(32), labels(32)
    distiller = make_distiller(teacher, student, cache=True)
    distiller.cache_teacher(x, batch_size=8, verbose=0)
    reference = float(distiller.compute_loss({k: v[::-1] for k, v in x.items()}, y[::-1], training=False))
    # Break the teacher: only cached outputs can still give the same loss.
    teacher.set_weights([np.zeros_like(w) for w in teacher.get_weights()])
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(32, seed=1, reshuffle_each_iteration=True).batch(32)
    ((shuffled_x, shuffled_y),) = list(dataset)
    order = np.argsort(example_keys(shuffled_x).numpy())
    assert not np.array_equal(order, np.arange(32))
    value = float(distiller.compute_loss(shuffled_x, shuffled_y, training=False))
    np.testing.assert_allclose(value, reference, rtol=1e-5)


def test_fit_fills_the_cache_once_and_trains_on_a_reshuffled_dataset(teacher, student):
    x, y = tokens(32), labels(32)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(32, reshuffle_each_iteration=True).batch(8)
    distiller = make_distiller(teacher, student, cache=True)
    history = distiller.fit(dataset, epochs=2, verbose=0).history
    assert distiller.cache.size == 32 and np.isfinite(history["loss"]).all()
    assert distiller.cache_teacher(dataset, verbose=0) == 0  # Nothing new to compute.


def test_missing_examples_fall_back_to_the_teacher(teacher, student):
    x, y = tokens(16), labels(16)
    distiller = make_distiller(teacher, student, cache=True)
    distiller.cache_teacher({k: v[:8] for k, v in x.items()}, verbose=0)
    plain = make_distiller(teacher, student, cache=None)
    for name, projection in distiller.projections.items():
        plain.projections[name].set_weights(projection.get_weights())
    batch = ({k: v[4:12] for k, v in x.items()}, y[4:12])
    np.testing.assert_allclose(
        float(distiller.compute_loss(*batch, training=False)),
        float(plain.compute_loss(*batch, training=False)),
        rtol=1e-6,
    )


def test_disk_cache_is_reused_and_invalidated_by_new_teacher_weights(tmp_path, teacher, student):
    x = tokens(16)
    first = make_distiller(teacher, student, cache=TeacherCache(tmp_path, storage_dtype="float16"))
    assert first.cache_teacher(x, verbose=0) == 16
    assert sorted(os.listdir(tmp_path)) == ["teacher_cache.json", "teacher_cache.npz"]
    second = make_distiller(teacher, student, cache=TeacherCache(tmp_path, storage_dtype="float16"))
    assert second.cache_teacher(x, verbose=0) == 0 and second.cache.size == 16
    assert second.cache.nbytes == first.cache.nbytes
    teacher.set_weights([w * 0.5 for w in teacher.get_weights()])
    third = make_distiller(teacher, student, cache=TeacherCache(tmp_path, storage_dtype="float16"))
    assert third.cache_teacher(x, verbose=0) == 16


def test_float16_storage_halves_memory(teacher, student):
    x = tokens(8)
    full = make_distiller(teacher, student, cache=TeacherCache())
    half = make_distiller(teacher, student, cache=TeacherCache(storage_dtype="float16"))
    full.cache_teacher(x, verbose=0)
    half.cache_teacher(x, verbose=0)
    assert half.cache.nbytes * 2 == full.cache.nbytes


def test_errors(teacher, student):
    with pytest.raises(ValueError, match="Expected storage_dtype in"):
        TeacherCache(storage_dtype="int8")
    distiller = make_distiller(teacher, student, cache=True)
    with pytest.raises(ValueError, match="Expected steps_per_epoch"):
        distiller.cache_teacher(tf.data.Dataset.from_tensor_slices(tokens(4)).batch(2).repeat(), verbose=0)
    with pytest.raises(ValueError, match="Expected a Distiller made with cache=True"):
        make_distiller(teacher, student, cache=None).cache_teacher(tokens(4))


def test_infinite_dataset_with_steps_per_epoch(teacher, student):
    dataset = tf.data.Dataset.from_tensor_slices((tokens(16), labels(16))).batch(8).repeat()
    distiller = make_distiller(teacher, student, cache=True)
    distiller.fit(dataset, steps_per_epoch=2, epochs=2, verbose=0)
    assert distiller.cache.size == 16
    keras.backend.clear_session()
