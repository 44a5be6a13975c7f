"""Aliases (run.alias, with_aliases, only_aliases, alias files), checked against the real
extra-data opening the same files with the same aliases."""

import json
import os
import stat

import numpy as np
import pytest

import exfel_data as ed

XGM = "SPB_XTD9_XGM/DOOCS/MAIN"
CAM = "SPB_IRU_CAM/CAM/SIDEMIC:daqOutput"
ALIASES = {
    "spb-xgm": XGM,
    "sa1-xgm": "SA1_XTD2_XGM/DOOCS/MAIN",
    "beam-x": (XGM, "beamPosition.ixPos"),
    "cam-frames": (CAM, "data.image.pixels"),
    "gone": "SPB_XTD9_XGM/DOOCS/NOT_HERE",
    "bad-key": (XGM, "no.such.key"),
}
YAML = f"""
spb-xgm: {XGM}
sa1-xgm: SA1_XTD2_XGM/DOOCS/MAIN
cam-frames: [{CAM}, data.image.pixels]
gone: SPB_XTD9_XGM/DOOCS/NOT_HERE
bad-key: [{XGM}, no.such.key]
{XGM}:
  beam-x: beamPosition.ixPos
"""


@pytest.fixture()
def both(spb_run):
    import extra_data

    return (ed.RunDirectory(spb_run).with_aliases(ALIASES),
            extra_data.RunDirectory(spb_run).with_aliases(ALIASES))


def test_alias_lookup_matches_extra_data(both):
    ours, theirs = both
    assert ours.alias["spb-xgm"] is ours[XGM]
    assert ours.alias["SPB_XGM"].source == theirs.alias["SPB_XGM"].source == XGM
    kd, kd_ref = ours.alias["beam-x"], theirs.alias["beam-x"]
    assert (kd.source, kd.key) == (kd_ref.source, kd_ref.key)
    np.testing.assert_array_equal(kd.ndarray(), kd_ref.ndarray())
    kd = ours.alias["spb-xgm", "beamPosition.iyPos"]
    np.testing.assert_array_equal(
        kd.ndarray(), theirs.alias["spb-xgm", "beamPosition.iyPos"].ndarray())
    assert ours.alias["cam-frames"].shape == theirs.alias["cam-frames"].shape
    assert ("sa1-xgm" in ours.alias, "nope" in ours.alias) == (True, False)
    with pytest.raises(TypeError):
        assert 42 in ours.alias


def test_alias_errors_name_the_alias(both):
    ours, _ = both
    with pytest.raises(ed.AliasError, match="'spb-xmg' is not an alias.*Did you mean 'spb-xgm'"):
        ours.alias["spb-xmg"]
    assert issubclass(ed.AliasError, KeyError)
    with pytest.raises(ValueError, match="'beam-x' is an alias of key 'beamPosition.ixPos'"):
        ours.alias["beam-x", "pressure"]
    with pytest.raises(ed.SourceNameError, match="NOT_HERE"):
        ours.alias["gone"]
    with pytest.raises(ed.PropertyNameError, match="no.such.key"):
        ours.alias["bad-key"]


def test_conflicting_aliases_raise(both):
    ours, _ = both
    assert ours.with_aliases(ALIASES)._aliases == ALIASES  # the same again is fine
    with pytest.raises(ValueError, match="conflicting alias definition for spb-xgm"):
        ours.with_aliases({"SPB_XGM": "SA1_XTD2_XGM/DOOCS/MAIN"})
    with pytest.raises(ValueError, match="conflicting alias"):
        ed.RunDirectory(ours.files[0].filename.rsplit("/", 1)[0]).with_aliases(
            {"a-b": XGM, "A_B": CAM})
    assert not ours.drop_aliases()._aliases


@pytest.mark.parametrize("ext", ["yml", "json", "toml"])
def test_alias_files_read_as_extra_data(spb_run, tmp_path, ext):
    import extra_data

    path = tmp_path / f"aliases.{ext}"
    if ext == "yml":
        path.write_text(YAML)
    elif ext == "json":
        nested = {a: list(t) if isinstance(t, tuple) else t for a, t in ALIASES.items()
                  if a != "beam-x"}
        nested[XGM] = {"beam-x": "beamPosition.ixPos"}
        path.write_text(json.dumps(nested))
    else:
        lines = [f'{a} = {json.dumps(list(t) if isinstance(t, tuple) else t)}'
                 for a, t in ALIASES.items() if a != "beam-x"]
        path.write_text("\n".join(lines) + f'\n["{XGM}"]\nbeam-x = "beamPosition.ixPos"\n')
    ours = ed.RunDirectory(spb_run, aliases=path)
    theirs = extra_data.RunDirectory(spb_run).with_aliases(path)
    assert ours._aliases == theirs._aliases == ALIASES
    assert ours.alias.file_paths == [path]
    assert f"Alias file: {path}" in repr(ours.alias)


def test_bad_alias_file_says_what_is_wrong(spb_run, tmp_path):
    path = tmp_path / "aliases.yml"
    path.write_text("xgm: [a, b, c]\n")
    with pytest.raises(ValueError, match=r"Alias 'xgm' in .*aliases.yml: expected a source"):
        ed.RunDirectory(spb_run, aliases=path)
    with pytest.raises(ValueError, match="unknown format '.txt'"):
        (tmp_path / "a.txt").write_text("")
        ed.RunDirectory(spb_run, aliases=tmp_path / "a.txt")


def test_only_aliases_matches_extra_data(both, spb_run):
    import extra_data

    ours = ed.RunDirectory(spb_run).only_aliases(ALIASES)
    theirs = extra_data.RunDirectory(spb_run).only_aliases(ALIASES)
    assert ours.all_sources == theirs.all_sources == {XGM, "SA1_XTD2_XGM/DOOCS/MAIN", CAM}
    for s in ours.all_sources:
        assert ours[s].keys() == theirs[s].keys()
    with pytest.raises(ValueError, match="gone -> SPB_XTD9_XGM/DOOCS/NOT_HERE"):
        ed.RunDirectory(spb_run).only_aliases(ALIASES, strict=True)


def test_alias_select_and_deselect_match_extra_data(both):
    ours, theirs = both
    for args in [("spb-xgm", "beamPosition.*"), ([("spb-xgm", "beamPosition.*"), "cam-frames"],),
                 ({"spb-xgm": None, "sa1-xgm": {"beamPosition.ixPos"}},)]:
        a, b = ours.alias.select(*args), theirs.alias.select(*args)
        assert a.all_sources == b.all_sources
        assert {s: a[s].keys() for s in a.all_sources} == {s: b[s].keys() for s in b.all_sources}
    a = ours.alias.deselect([("spb-xgm", "beamPosition.*")])
    b = theirs.alias.deselect([("spb-xgm", "beamPosition.*")])
    assert a[XGM].keys() == b[XGM].keys()


def test_aliases_survive_selections_and_union(both):
    ours, _ = both
    for sub in (ours.select_trains(np.s_[:5]), ours.select("*XGM*"), ours.deselect("*CAM*"),
                next(iter(ours.split_trains(parts=3)))):
        assert sub._aliases == ALIASES
    half1 = ours.drop_aliases().with_aliases({"spb-xgm": XGM})
    half2 = ours.drop_aliases().with_aliases({"beam-x": ALIASES["beam-x"]})
    assert half1.union(half2)._aliases == {"spb-xgm": XGM, "beam-x": ALIASES["beam-x"]}
    with pytest.raises(ValueError, match="conflicting alias"):
        half1.union(ours.drop_aliases().with_aliases({"spb-xgm": CAM}))


def test_open_run_default_alias_file_from_template(spb_run, tmp_path, monkeypatch):
    prop = tmp_path / "exp" / "SPB" / "202401" / "p700000"
    (prop / "raw").mkdir(parents=True)
    (prop / "usr").mkdir()
    os.symlink(spb_run, prop / "raw" / "r0238")
    monkeypatch.setenv("EXFEL_DATA_ROOT", str(tmp_path / "exp"))
    monkeypatch.setenv("EXTRA_DATA_SW_ROOT", str(tmp_path / "sw"))
    assert ed.open_run(700000, 238)._aliases == {}  # no file, no template: no aliases
    (tmp_path / "sw" / "SPB").mkdir(parents=True)
    (tmp_path / "sw" / "SPB" / "extra-data-aliases-default.yml").write_text(f"xgm: {XGM}\n")
    run = ed.open_run(700000, 238)
    created = prop / "usr" / "extra-data-aliases.yml"
    assert run.alias["xgm"].source == XGM and run.alias.file_paths == [created]
    assert stat.S_IMODE(os.stat(created).st_mode) & 0o222 == 0o222
    assert ed.open_run(700000, 238, aliases=None)._aliases == {}
    (prop / "usr" / "mine.json").write_text(json.dumps({"cam": CAM}))
    assert ed.open_run(700000, 238, aliases="{}/usr/mine.json")._aliases == {"cam": CAM}


def test_jhub_links():
    from exfel_data.aliases import AliasIndexer

    class Fake:
        _alias_files = ["/gpfs/exfel/exp/SPB/202401/p700000/usr/a.yml", "/tmp/b.yml"]

    assert AliasIndexer(Fake()).jhub_links() == {
        "/gpfs/exfel/exp/SPB/202401/p700000/usr/a.yml":
            "https://max-jhub.desy.de/hub/user-redirect/lab/tree/GPFS/exfel/exp/SPB/202401/"
            "p700000/usr/a.yml"}
