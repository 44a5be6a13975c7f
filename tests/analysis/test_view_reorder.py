"""The viewer's panel split and the live runner's reorder buffer, in isolation."""

import time

import numpy as np
import pytest

from bridge.process_reorder import ReorderBuffer
from bridge.view import Viewer, split_panels


def test_split_panels_kinds():
    values = {
        "image": np.arange(12.0).reshape(3, 4),
        "stack": np.ones((5, 3, 4)),                    # mean over leading axes
        "trace": np.arange(5),
        "scan.x": np.array([1.0, 2.0, 3.0]),
        "scan.y": np.array([4.0, 5.0, 6.0]),
        "n": 7, "name": "run 12", "one": np.array([2.5]),
        "metadata": {"timestamp.tid": 1},
    }
    images, lines, texts = split_panels(values)
    assert sorted(images) == ["image", "stack"]
    np.testing.assert_array_equal(images["stack"], np.ones((3, 4)))
    assert sorted(lines) == ["scan", "trace"]
    np.testing.assert_array_equal(lines["scan"][0], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(lines["scan"][1], [4.0, 5.0, 6.0])
    assert lines["trace"][0] is None
    assert texts == {"n": 7, "name": "run 12", "one": 2.5}


def test_viewer_draws_png(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image
    import matplotlib.pyplot as plt

    viewer = Viewer("tcp://127.0.0.1:1", png=str(tmp_path / "v.png"))
    viewer.fig = plt.figure()
    msg = {"analysis/x": {"img": np.eye(4), "line": np.arange(3.0), "n": 3,
                          "metadata": {"timestamp.tid": 5}},
           "analysis/x:info": {"reduced": 3, "final": True}}
    assert viewer.draw(msg) is True
    assert "analysis/x: final result, train 5" in viewer.fig._suptitle.get_text()
    text = viewer._artists["__text__"].get_text()
    assert "n: 3" in text and "[reduced]: 3" in text
    artist = viewer._artists["img"][0]
    assert tuple(artist.get_extent()) == (-0.5, 3.5, -0.5, 3.5)  # the image's own shape
    viewer.draw({"CAM": {"px": np.ones((2, 6)), "metadata": {"timestamp.tid": 9}}})
    assert viewer.fig._suptitle.get_text() == "CAM: train 9"   # no result: no state
    assert tuple(viewer._artists["px"][0].get_extent()) == (-0.5, 5.5, -0.5, 1.5)
    viewer.write_png()
    assert matplotlib.image.imread(tmp_path / "v.png").shape[2] in (3, 4)
    with pytest.raises(ValueError, match="No source 'other'.*analysis/x"):
        Viewer("tcp://127.0.0.1:1", source="other")._pick(msg)
    plt.close(viewer.fig)


def test_reorder_in_sequence_and_bounded():
    r = ReorderBuffer(limit=2)
    assert r.push(1, "b") == []
    assert r.push(0, "a") == ["a", "b"]
    assert r.push(3, "d") == [] and r.push(4, "e") == []
    assert r.push(5, "f") == ["d", "e", "f"]   # full: moves past the missing 2
    assert r.push(2, "c") == [] and r.late == 1
    assert r.push(7, "h") == [] and r.flush() == ["h"]


def test_viewer_window_updates_in_place(monkeypatch):
    """The windowed mode's loop (``png=None``) on a non-interactive backend: one figure,
    shown without blocking, its artists updated in place from each message; it ends
    when the window is closed."""
    import threading

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bridge.server import Server

    shown = []
    monkeypatch.setattr(plt, "show", lambda **kw: shown.append(kw))
    server = Server("tcp://127.0.0.1:0", sock="PUB", policy="drop")
    stop = threading.Event()

    def publish():
        i = 0
        while not stop.is_set():
            i += 1
            server.feed({"analysis/x": {"img": np.full((3, 4), float(i)),
                                        "line": np.arange(5.0) * i, "n": i},
                         "analysis/x:info": {"reduced": i, "final": False}}, train_id=i)
            time.sleep(0.02)

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    viewer = Viewer(f"tcp://127.0.0.1:{server.port}", sock="SUB", timeout=30)
    drawn, draw = [], viewer.draw

    def draw_and_record(data):
        final = draw(data)
        image, _ = viewer._artists["img"]
        drawn.append((viewer.fig, id(image), image.get_array().max(),
                      viewer._artists["line"].get_ydata()[1], data["analysis/x"]["n"]))
        if len(drawn) == 3:
            plt.close(viewer.fig)  # the user closes the window
        return final

    monkeypatch.setattr(viewer, "draw", draw_and_record)
    try:
        viewer.run()
    finally:
        stop.set()
        thread.join(5)
        server.stop()
    # Shown without blocking (plt.pause shows again while the loop waits).
    assert shown and all(kw == {"block": False} for kw in shown)
    assert viewer.png is None and viewer.writes == 0
    assert len(drawn) == 3
    assert len({fig for fig, *_ in drawn}) == 1          # one figure ...
    assert len({artist for _, artist, *_ in drawn}) == 1  # ... its image updated in place
    for _, _, image_max, line_y1, n in drawn:
        assert image_max == n and line_y1 == n            # showing each message's values
    assert drawn[0][-1] < drawn[-1][-1]
