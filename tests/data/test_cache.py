"""generated_folder: a folder appears whole on first use, a failed build leaves nothing, and a
second call reuses the first one's files."""

from __future__ import annotations

from pathlib import Path

import pytest

from lsmseg.data.cache import cache_root, generated_folder


def test_cache_root_follows_lsmseg_data(monkeypatch, tmp_path):
    monkeypatch.setenv("LSMSEG_DATA", str(tmp_path / "here"))
    assert cache_root() == tmp_path / "here"
    monkeypatch.delenv("LSMSEG_DATA")
    assert cache_root() == Path.home() / ".cache" / "lsmseg"


def test_folder_appears_whole_and_is_built_once(tmp_path):
    calls: list[Path] = []

    def build(tmp: Path) -> None:
        calls.append(tmp)
        assert tmp.parent == tmp_path and tmp.name.startswith(".set-")  # a hidden sibling
        (tmp / "a.txt").write_text("1")
        (tmp / "b.txt").write_text("2")

    folder = generated_folder("set", build, root=tmp_path)
    assert folder == tmp_path / "set"
    assert sorted(p.name for p in folder.iterdir()) == ["a.txt", "b.txt"]
    assert generated_folder("set", build, root=tmp_path) == folder
    assert len(calls) == 1  # the second call reused the folder
    assert [p.name for p in tmp_path.iterdir()] == ["set"]  # no temporary folder left


def test_failed_build_leaves_nothing(tmp_path):
    def build(tmp: Path) -> None:
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        generated_folder("set", build, root=tmp_path)
    assert list(tmp_path.iterdir()) == []
    # The next call builds it afresh.
    folder = generated_folder("set", lambda tmp: (tmp / "ok.txt").write_text("ok"), root=tmp_path)
    assert (folder / "ok.txt").read_text() == "ok"


def test_a_lost_race_keeps_the_winners_folder(tmp_path):
    def build(tmp: Path) -> None:
        (tmp / "mine.txt").write_text("loser")
        winner = tmp_path / "set"  # another process renamed its copy in meanwhile
        winner.mkdir()
        (winner / "theirs.txt").write_text("winner")

    folder = generated_folder("set", build, root=tmp_path)
    assert [p.name for p in folder.iterdir()] == ["theirs.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["set"]
