"""Users' data files (issue 14): each way a file can be wrong is a named DataError with the file, the line and
the fix; none is turned into a silent class such as '' or 'NaN'."""
import json

import pytest

from leanfit.engine.errors import DataError
from leanfit.tasks.files import check_labels, label_ids, read_table


def test_latin1_file_names_the_encoding_and_the_line(tmp_path):
    p = tmp_path / "d.csv"
    p.write_bytes("text,label\nok,a\ncaf\xe9 cr\xe8me,b\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"must be UTF-8, but byte 0xe9 on line 3 is not .*iconv -f latin1"):
        read_table(p)


def test_jsonl_bad_line_is_named_by_number(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"text": "a", "label": 1}\n\n{"text": "b", "label": \n{"text": "c", "label": 0}\n')
    with pytest.raises(DataError, match=r"line 3 is not valid JSON \(Expecting value"):
        read_table(p)


def test_jsonl_rows_without_the_label(tmp_path):
    p = tmp_path / "d.jsonl"
    rows = [{"text": "a", "label": 1}, {"text": "b"}, {"text": "c", "label": None}]
    p.write_text("\n".join(json.dumps(r) for r in rows))
    with pytest.raises(DataError, match=r"every row needs a value in column 'label', but 2 row\(s\) lack it \(missing "
                                        r"or null\) at line\(s\) 2, 3\."):
        read_table(p)


def test_short_csv_row_lacks_the_label(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("text,label\na,1\nb\nc,0\n")
    with pytest.raises(DataError, match=r"1 row\(s\) lack it \(missing or null\) at line\(s\) 3\."):
        read_table(p)


@pytest.mark.parametrize("rows, bad", [
    ("a,1\nb,\nc,0\n", "2"),                 # an empty cell
    ("a,1\nb,NaN\nc,0\nd,nan\n", "2, 4"),    # NaN as text (pandas)
])
def test_empty_and_nan_labels_are_refused_for_classification(tmp_path, rows, bad):
    """The reader keeps them (a completion or a text may be anything); label_ids, which every classification task
    calls, refuses them instead of making '' and 'NaN' classes."""
    p = tmp_path / "d.csv"
    p.write_text("text,label\n" + rows)
    _, labels = read_table(p)
    with pytest.raises(DataError, match=rf"the training data: every row needs a label, but .* an empty or NaN one: "
                                        rf"data row\(s\) {bad} "):
        label_ids(labels)


def test_json_nan_label_in_a_held_out_file(tmp_path):
    p = tmp_path / "d.json"
    p.write_text('[{"text": "a", "label": 1}, {"text": "b", "label": 0}, {"text": "c", "label": NaN}]')
    _, labels = read_table(p)
    assert labels == ["1", "0", "nan"]
    with pytest.raises(DataError, match=r"held-out labels \(file 2 of 2\): every row needs a label, .* row\(s\) 3 "):
        label_ids(["1", "0"], labels)


def test_one_class_data_is_refused():
    with pytest.raises(DataError, match=r"must have at least 2 classes, but all 3 rows have the label 'pos'"):
        label_ids(["pos", "pos", "pos"], ["pos", "neg"])  # held-out classes do not rescue one-class training data
    check_labels(["a", "b"])


def test_numbers_and_integral_floats_are_one_class(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in [{"text": "a", "label": 1}, {"text": "b", "label": 1.0},
                                                    {"text": "c", "label": 0}]))
    texts, labels = read_table(p)
    assert labels == ["1", "1", "0"] and label_ids(labels)[1] == ["0", "1"]


def test_quoted_newlines_and_missing_text(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text('text,label\n"two\nlines",1\nc,0\n')
    assert read_table(p) == (["two\nlines", "c"], ["1", "0"])
    q = tmp_path / "e.jsonl"
    q.write_text('{"text": "a", "label": 1}\n{"label": 0}\n')
    with pytest.raises(DataError, match=r"every row needs a value in column 'text', but 1 row\(s\) lack it .* line\(s\) 2"):
        read_table(q)


def test_rows_that_are_not_objects_and_an_empty_file(tmp_path):
    (tmp_path / "a.json").write_text("[1, 2]")
    with pytest.raises(DataError, match=r"row 1 must be a JSON object"):
        read_table(tmp_path / "a.json")
    (tmp_path / "b.csv").write_text("")
    with pytest.raises(DataError, match=r"has no rows"):
        read_table(tmp_path / "b.csv")
