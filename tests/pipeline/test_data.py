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
