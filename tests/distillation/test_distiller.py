import keras
import numpy as np
import pytest

from kcompress import pruning, quantization
from kcompress.distillation import (
    AttentionKL,
    Distiller,
    HiddenStateMSE,
    SoftLabelKL,
)
from tests.distillation.conftest import bert, labels, tokens


def mlp(width, outputs=3):
    return keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(width, activation="relu"), keras.layers.Dense(outputs)]
    )


def test_keras_hub_teacher_to_smaller_student_with_every_loss(teacher, student):
    distiller = Distiller(
        teacher, student, alpha=0.7, temperature=3.0, hidden="uniform", attention="last", embedding=True
    )
    # Widths differ (16 vs 8): hidden and embedding states get projections.
    assert sorted(distiller.projections) == ["projection_embedding", "projection_hidden_0", "projection_hidden_1"]
    teacher_before = [w.copy() for w in teacher.get_weights()]
    student_before = [w.copy() for w in student.get_weights()]
    distiller.compile(optimizer=keras.optimizers.Adam(1e-2), metrics=["accuracy"])
    x, y = tokens(32), labels(32)
    history = distiller.fit(x, y, epochs=3, batch_size=8, verbose=0).history
    assert set(history) == {
        "loss",
        "accuracy",
        "soft_label_kl",
        "hard_label_ce",
        "hidden_mse",
        "attention_kl",
        "embedding_mse",
    }
    assert history["loss"][-1] < history["loss"][0]
    assert history["hidden_mse"][-1] < history["hidden_mse"][0]
    for before, after in zip(teacher_before, teacher.get_weights()):
        np.testing.assert_array_equal(before, after)
    assert any(not np.array_equal(b, a) for b, a in zip(student_before, student.get_weights()))
    predictions = distiller.predict(x, verbose=0)
    np.testing.assert_allclose(predictions, student.predict(x, verbose=0), atol=1e-5)
    assert set(distiller.evaluate(x, y, verbose=0, return_dict=True)) == set(history)


def test_total_loss_is_the_weighted_sum(teacher, student):
    distiller = Distiller(teacher, student, alpha=0.25, hidden="last", hidden_weight=2.0)
    distiller.compile()
    x, y = tokens(8), labels(8)
    total = float(distiller.compute_loss(x, y, training=False))
    logs = distiller.get_metrics_result()
    expected = 0.25 * logs["soft_label_kl"] + 0.75 * logs["hard_label_ce"] + 2.0 * logs["hidden_mse"]
    np.testing.assert_allclose(total, expected, rtol=1e-5)


def test_plain_keras_models_logits_only_without_labels():
    teacher, student = mlp(32), mlp(4)
    distiller = Distiller(teacher, student, alpha=1.0, temperature=4.0)
    distiller.compile(optimizer="adam")
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    history = distiller.fit(x, epochs=2, batch_size=16, verbose=0).history
    assert set(history) == {"loss", "soft_label_kl"}


def test_sample_weights_scale_the_losses():
    teacher, student = mlp(16), mlp(4)
    distiller = Distiller(teacher, student, alpha=0.5)
    distiller.compile()
    x, y = np.random.default_rng(1).normal(size=(8, 4)).astype("float32"), np.zeros(8, "int32")
    full = float(distiller.compute_loss(x, y, sample_weight=np.ones(8), training=False))
    half = float(distiller.compute_loss(x, y, sample_weight=np.full(8, 0.5), training=False))
    np.testing.assert_allclose(half, full / 2, rtol=1e-5)


def test_explicit_losses_and_pairs(teacher, student):
    losses = [SoftLabelKL(2.0), HiddenStateMSE(layers=[(0, 0), (3, 1)]), AttentionKL(layers=[(3, 1)], weight=0.1)]
    distiller = Distiller(teacher, student, losses)
    assert distiller._pairs[1] == ((0, 0), (3, 1))
    distiller.compile(optimizer="adam")
    history = distiller.fit(tokens(16), labels(16), batch_size=8, verbose=0).history
    assert {"soft_label_kl", "hidden_mse", "attention_kl"} <= set(history)


def test_distill_into_a_pruned_student(teacher):
    student = pruning.prune_low_magnitude(
        bert(layers=2, width=8, heads=2, seed=1), pruning.ConstantSparsity(0.5, begin_step=0, frequency=1)
    )
    distiller = Distiller(teacher, student, alpha=0.5, hidden="uniform", attention="uniform")
    distiller.compile(optimizer="adam")
    distiller.fit(tokens(16), labels(16), batch_size=8, verbose=0, callbacks=[pruning.UpdatePruningStep()])
    stripped = pruning.strip_pruning(distiller.student)
    kernel = stripped.backbone.transformer_layers[0]._feedforward_intermediate_dense.kernel
    np.testing.assert_allclose(np.mean(np.asarray(kernel) == 0), 0.5, atol=0.02)


def test_distill_into_a_qat_student(teacher):
    student = quantization.quantize_model(bert(layers=2, width=8, heads=2, seed=1))
    distiller = Distiller(teacher, student, alpha=0.5, hidden="uniform", attention="uniform")
    distiller.compile(optimizer="adam")
    history = distiller.fit(tokens(16), labels(16), batch_size=8, verbose=0).history
    assert np.isfinite(history["loss"][0]) and np.isfinite(history["attention_kl"][0])
    assert quantization.quantization_wrappers(distiller.student)


def test_output_shape_mismatch():
    with pytest.raises(ValueError, match=r"Expected the student's output shape to match the teacher's.*\(None, 3\)"):
        Distiller(mlp(8, outputs=2), mlp(8, outputs=3))


@pytest.mark.parametrize("alpha", [-0.1, 1.5, "0.5"])
def test_bad_alpha(alpha):
    with pytest.raises(ValueError, match=r"Expected alpha in \[0, 1\]"):
        Distiller(mlp(8), mlp(4), alpha=alpha)


def test_bad_temperature():
    with pytest.raises(ValueError, match="Expected temperature > 0. Received: temperature=0"):
        Distiller(mlp(8), mlp(4), temperature=0)


def test_mapping_past_the_student_depth(teacher, student):
    with pytest.raises(ValueError, match=r"Expected student layers in \[0, 2\)"):
        Distiller(teacher, student, hidden=[(0, 0), (1, 2)])


def test_hidden_on_a_model_without_blocks():
    with pytest.raises(ValueError, match="Expected the teacher to expose transformer blocks for HiddenStateMSE"):
        Distiller(mlp(8), mlp(4), hidden="uniform")


def test_attention_on_named_layers_without_attention():
    teacher, student = mlp(8), mlp(4)
    with pytest.raises(ValueError, match="Expected each teacher block to hold a MultiHeadAttention for AttentionKL"):
        Distiller(
            teacher,
            student,
            attention="uniform",
            teacher_layers=[teacher.layers[0].name],
            student_layers=[student.layers[0].name],
        )


def test_other_bad_arguments():
    with pytest.raises(ValueError, match="Expected the teacher to be a keras.Model"):
        Distiller("teacher", mlp(4))
    with pytest.raises(ValueError, match="Expected losses to be a non-empty list of DistillationLoss"):
        Distiller(mlp(8), mlp(4), losses=["kl"])
    with pytest.raises(ValueError, match="Expected cache to be None, True or a TeacherCache"):
        Distiller(mlp(8), mlp(4), cache="disk")
    with pytest.raises(ValueError, match="Expected loss=None"):
        Distiller(mlp(8), mlp(4)).compile(loss="mse")
