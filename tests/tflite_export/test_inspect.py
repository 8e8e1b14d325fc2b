import pytest

from tflite_export.inspect import describe


def test_int8_cnn_ops_and_full_integer(cnn_int8, tmp_path):
    path = tmp_path / "cnn.tflite"
    path.write_bytes(cnn_int8[1])
    info = describe(path)
    assert info.size_bytes == len(cnn_int8[1])
    assert dict(info.op_counts()) == {
        "CONV_2D": 1,
        "MAX_POOL_2D": 1,
        "RESHAPE": 1,
        "FULLY_CONNECTED": 1,
        "SOFTMAX": 1,
    }
    assert info.is_full_integer()
    assert info.float_ops() == []
    (x,) = info.inputs
    assert (x.name, x.shape, x.dtype) == ("x", (1, 8, 8, 1), "int8")
    assert x.scale > 0 and isinstance(x.zero_point, int) and not x.is_constant
    assert info.outputs[0].dtype == "int8"
    assert "| CONV_2D | 1 | int8, int32 | int8 |" in info.table()
    assert str(info).startswith("TFLite model:") and "full integer" in str(info)


def test_conv_weights_are_constant_per_channel(cnn_int8):
    conv = describe(cnn_int8[1]).ops[0]
    weights, bias = conv.inputs[1], conv.inputs[2]
    assert weights.is_constant and bias.is_constant and bias.dtype == "int32"
    assert weights.scale is None and len(weights.scales) == 4  # one scale per output channel
    assert not conv.outputs[0].is_constant


def test_optional_inputs_are_skipped(mlp_float):
    for op in describe(mlp_float[1]).ops:
        assert op.name == "FULLY_CONNECTED"
        assert all(t.index >= 0 for t in op.inputs)


def test_float_model_is_not_full_integer(mlp_float):
    info = describe(mlp_float[1])
    assert not info.is_full_integer()
    assert [op.name for op in info.float_ops()] == ["FULLY_CONNECTED", "FULLY_CONNECTED"]
    assert info.inputs[0].scale is None and info.inputs[0].zero_point is None
    assert "2 ops touch float tensors" in str(info)


def test_float_op_inside_int8_model(cumsum_int8):
    info = describe(cumsum_int8)
    assert not info.is_full_integer()
    assert [op.name for op in info.float_ops()] == ["DEQUANTIZE", "CUMSUM", "QUANTIZE"]


def test_dynamic_batch_shape_signature(dynamic_int8):
    (x,) = describe(dynamic_int8[1]).inputs
    assert x.shape_signature == (-1, 16) and x.is_dynamic
    assert x.shape == (1, 16)


def test_signature_names_dict_inputs(token_model):
    _, with_signature, without = token_model
    info = describe(with_signature)
    assert info.signature_key == "serving_default"
    assert sorted(t.name for t in info.inputs) == ["padding_mask", "token_ids"]
    assert {t.dtype for t in info.inputs} == {"int32"}
    assert [t.name for t in info.outputs] == ["output_0"]
    assert "GATHER" in info.op_counts()
    plain = describe(without)
    assert plain.signature_key is None
    assert sorted(t.name for t in plain.inputs) == ["padding_mask", "token_ids"]


def test_missing_path():
    with pytest.raises(ValueError, match="Expected a path to an existing .tflite file"):
        describe("/no/such/model.tflite")


def test_not_a_flatbuffer():
    with pytest.raises(ValueError, match="TFLite flatbuffer"):
        describe(b"\x00" * 64)


def test_wrong_type():
    with pytest.raises(ValueError, match="Expected a .tflite path or its bytes. Received: model='int'"):
        describe(123)


def test_unknown_signature_key(token_model):
    with pytest.raises(ValueError, match=r"Expected a signature key in \['serving_default'\]"):
        describe(token_model[1], signature_key="nope")
