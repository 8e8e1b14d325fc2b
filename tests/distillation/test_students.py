import keras
import numpy as np
import pytest

from kcompress.distillation import shallow_student
from tests.distillation.conftest import bert, tokens


def test_full_depth_copy_gives_the_teachers_outputs():
    teacher = bert(layers=3)
    student = shallow_student(teacher, 3)
    x = tokens(4)
    np.testing.assert_allclose(student.predict(x, verbose=0), teacher.predict(x, verbose=0), atol=1e-5)


def test_kept_layers_are_copied():
    teacher = bert(layers=4)
    student = shallow_student(teacher, 2, layers=[1, 3])
    assert student.backbone.num_layers == 2 and student.preprocessor is None
    for source, copy in zip([1, 3], range(2)):
        for a, b in zip(
            teacher.backbone.transformer_layers[source].get_weights(),
            student.backbone.transformer_layers[copy].get_weights(),
        ):
            np.testing.assert_array_equal(a, b)
    assert student.count_params() < teacher.count_params()


def test_errors():
    with pytest.raises(ValueError, match=r"Expected num_layers in \[1, 2\]"):
        shallow_student(bert(layers=2), 3)
    with pytest.raises(ValueError, match=r"Expected 1 teacher block indices in \[0, 2\)"):
        shallow_student(bert(layers=2), 1, layers=[2])
    with pytest.raises(ValueError, match="Expected a keras-hub text classifier"):
        shallow_student(keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)]), 1)
