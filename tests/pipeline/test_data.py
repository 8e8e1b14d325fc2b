import pytest

from kcompress.pipeline import PipelineConfig, load_text_data, read_labelled_csv


def test_csv_with_named_labels_is_split_by_seed(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text,label\n" + "".join(f"text {i},{'pos' if i % 2 else 'neg'}\n" for i in range(50)))
    data = load_text_data(PipelineConfig(data=str(path), train_size=20, test_size=10))
    assert len(data.train) == 20 and len(data.test) == 10 and data.class_names == ("neg", "pos")
    assert not set(data.train.texts) & set(data.test.texts)
    again = load_text_data(PipelineConfig(data=str(path), train_size=20, test_size=10))
    assert list(again.test.texts) == list(data.test.texts)


def test_rotten_tomatoes_by_default():
    data = load_text_data(PipelineConfig(train_size=30, test_size=20))
    assert len(data.train) == 30 and len(data.test) == 20 and data.class_names == ("rotten", "fresh")


def test_csv_errors(tmp_path):
    with pytest.raises(ValueError, match="Expected an existing CSV file"):
        read_labelled_csv(tmp_path / "missing.csv")
    (tmp_path / "bad.csv").write_text("sentence,y\nhello,1\n")
    with pytest.raises(
        ValueError, match=r"Expected a CSV file with 'text' and 'label' columns.*columns=\['sentence', 'y'\]"
    ):
        read_labelled_csv(tmp_path / "bad.csv")


def _write(tmp_path, content):
    path = tmp_path / "t.csv"
    path.write_bytes(content)
    return str(path)


def test_the_class_count_comes_from_the_data(tmp_path):
    labels = ["anger", "calm", "disgust", "fear", "joy", "sadness", "surprise", "trust"]
    path = _write(tmp_path, b"text,label\n" + b"".join(f"text {i},{labels[i % 8]}\n".encode() for i in range(80)))
    data = load_text_data(PipelineConfig(data=path, test_size=16))
    assert data.class_names == tuple(labels) and PipelineConfig().num_classes is None
    assert load_text_data(PipelineConfig(data=path, num_classes=8)).class_names == tuple(labels)
    with pytest.raises(ValueError) as error:
        load_text_data(PipelineConfig(data=path, num_classes=2))
    assert str(error.value) == f"Expected num_classes=8 (the labels in {path}). Received: num_classes=2"
    with pytest.raises(ValueError, match=r"^Expected num_classes=2 \(the labels in rotten_tomatoes\)"):
        load_text_data(PipelineConfig(num_classes=3, train_size=10, test_size=10))


def test_a_byte_order_mark_is_dropped(tmp_path):
    path = _write(tmp_path, "\ufefftext,label\n".encode() + b"".join(b"t,%d\n" % (i % 2) for i in range(10)))
    assert load_text_data(PipelineConfig(data=path, test_size=2)).class_names == ("0", "1")


@pytest.mark.parametrize(
    "content, message",
    [
        (b"text,label\na,x\nb, \n", r"Expected a label on every row. Received: data='.*', line=3, label=''"),
        (b"text,label\na,x\n\nb,y\xff\n", r"Expected a UTF-8 text file. Received: data='.*', line=4, byte='0xff'"),
        (b"text,label\n" + b"a,x\n" * 4 + b"b,y\n" * 5, r"at least 5 rows of each label .* rows=\{'x': 4\}$"),
        (b"text,label\n" + b"a,x\n" * 5, r"Expected labels of at least 2 classes. .* labels=\['x'\]"),
        (b"text,label\na,x\n" + b"b" * 200_000 + b",y\n", r"a readable CSV file. .* line=3, error='field larger"),
    ],
)
def test_bad_data(tmp_path, content, message):
    with pytest.raises(ValueError, match=message):
        load_text_data(PipelineConfig(data=_write(tmp_path, content)))
