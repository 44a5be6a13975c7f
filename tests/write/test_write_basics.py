"""Parts of the conversion machinery that need no run: parsing, atomic outputs, PNG."""

import io
import re

import numpy as np
import pytest

from exfel_data.selection import by_id, by_index, parse_trains
from exfel_data.write.output import OutputExistsError, atomic_output
from exfel_data.write.plan import frame_numbers
from exfel_data.write.png import encode_png, parse_png_scale, to_grey
from exfel_data.write.request import Selection, parse_part, parse_selection


@pytest.mark.parametrize("text, source, key", [
    ("SA1_XTD2_XGM/XGM/DOOCS", "SA1_XTD2_XGM/XGM/DOOCS", "*"),
    ("*/DET/*[image.data]", "*/DET/*", "image.data"),
    ("*/DET/[0-3]CH0:xtdf[*]", "*/DET/[0-3]CH0:xtdf", "*"),
    ("*XGM*[*.value]", "*XGM*", "*.value"),
])
def test_parse_selection(text, source, key):
    sel = parse_selection(text)
    assert sel == Selection(source, key)
    assert parse_selection(str(sel)) == sel


@pytest.mark.parametrize("bad", ["", "[key]", "SRC[]", "SRC]"])
def test_parse_selection_errors(bad):
    with pytest.raises(ValueError, match=re.escape(bad) if bad else "empty selection"):
        parse_selection(bad)


@pytest.mark.parametrize("text, by, sl", [
    ("0:10", "index", slice(0, 10)), (":5", "index", slice(None, 5)),
    ("::2", "index", slice(None, None, 2)), ("5", "index", slice(5, 6)),
    ("-1", "index", slice(-1, None)), ("id:100:200", "id", slice(100, 200)),
    ("id:100", "id", slice(100, 101)), ("-3:", "index", slice(-3, None)),
    (" 10:20 ", "index", slice(10, 20)), (":", "index", slice(None, None)),
])
def test_parse_trains(text, by, sl):
    tr = parse_trains(text)
    assert (tr.by, tr.slice) == (by, sl)
    assert parse_trains(str(tr)) == tr
    expected = (by_id if by == "id" else by_index)[sl]
    assert type(tr.selector) is type(expected) and tr.selector.value == sl


@pytest.mark.parametrize("bad, match", [
    ("a:b", "'a:b' is not a train range; use START:STOP"), ("1:2:0", "step cannot be 0"),
    ("id:200:100:-1", "cannot go backwards"), ("::-1", "cannot go backwards"),
    ("", "is not a train range"), ("1:2:3:4", "'1:2:3:4' is not a train range"),
    ("-:5", "is not a train range"), ("id:", "is not a train range"),
    ("id:-5:", "train IDs are positive"),
])
def test_parse_trains_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        parse_trains(bad)


def test_parse_part():
    assert parse_part("3/8") == (3, 8)
    for bad in ("0/4", "5/4", "x/4", "1/0"):
        with pytest.raises(ValueError, match=rf"{bad}.*parts? .*1\.\.N"):
            parse_part(bad)


def test_atomic_output_file(tmp_path):
    out = tmp_path / "a.npz"
    with atomic_output(out) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".a.npz.partial-")
        tmp.write_text("x")
        assert not out.exists()
    assert out.read_text() == "x"
    assert [p.name for p in tmp_path.iterdir()] == ["a.npz"]
    with pytest.raises(OutputExistsError, match="--overwrite"):
        with atomic_output(out):
            pass
    with atomic_output(out, overwrite=True) as tmp:
        tmp.write_text("y")
    assert out.read_text() == "y"


def test_atomic_output_interrupted(tmp_path):
    out = tmp_path / "folder"
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(out, directory=True) as tmp:
            (tmp / "f.h5").write_text("half")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_atomic_output_replaces_folder(tmp_path):
    out = tmp_path / "folder"
    out.mkdir()
    (out / "old").write_text("1")
    with atomic_output(out, overwrite=True, directory=True) as tmp:
        (tmp / "new").write_text("2")
    assert [p.name for p in out.iterdir()] == ["new"]
    assert [p.name for p in tmp_path.iterdir()] == ["folder"]


def test_png_roundtrip():
    from PIL import Image as PIL
    img = np.arange(12, dtype=np.float32).reshape(3, 4)
    grey = to_grey(img, parse_png_scale("minmax"))
    # minmax: 0 -> black, 11 -> white, linear and rounded between
    np.testing.assert_array_equal(grey, np.rint(np.arange(12) * 255 / 11).reshape(3, 4))
    assert grey.dtype == np.uint8
    back = np.asarray(PIL.open(io.BytesIO(encode_png(grey))))
    np.testing.assert_array_equal(back, grey)


def test_png_scales():
    img = np.array([[0.0, 50.0], [100.0, np.nan]])
    np.testing.assert_array_equal(to_grey(img, parse_png_scale("fixed 0 200")),
                                  [[0, 64], [128, 0]])
    assert parse_png_scale("percentile").low == 1.0
    assert parse_png_scale("fixed:1:2").high == 2.0
    for bad in ("fixed 1", "fixed 2 1", "percentile 5 200", "gamma"):
        with pytest.raises(ValueError, match="png-scale"):
            parse_png_scale(bad)


def test_frame_numbers():
    tids = np.array([5, 5, 5, 7, 9, 9], dtype=np.uint64)
    np.testing.assert_array_equal(frame_numbers(tids), [0, 1, 2, 0, 0, 1])
