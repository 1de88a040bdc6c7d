import numpy as np
import pytest

from lsmseg.data.sit import embedded_sit, generate_sit, load_sit, read_sit_folder, ring, write_sit_folder
from lsmseg.keys import Mode


def test_ring_follows_the_papers_parameters() -> None:
    r = ring(128, 0.5, 0.5, 0.0, 0.0)  # centre (64, 64), inner radius 10, thickness 5
    assert r[64, 64 + 12] and not r[64, 64 + 9] and not r[64, 64 + 15]


def test_y_is_the_ring_with_permuted_parameters() -> None:
    x, y = generate_sit(3, seed=0)
    rng = np.random.default_rng(0)
    a, b, c, d = rng.random(4)
    assert np.array_equal(y[0, 0], ring(128, d, c, b, a))
    assert x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1


def test_generation_is_deterministic() -> None:
    assert np.array_equal(generate_sit(2, seed=5)[0], generate_sit(2, seed=5)[0])


def test_folder_round_trip_and_rows(tmp_path) -> None:
    x, y = generate_sit(20, size=32, seed=2)
    write_sit_folder(tmp_path, x, y)
    x2, y2 = read_sit_folder(tmp_path)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    rows = load_sit(tmp_path, proportion=0.5)
    modes = [r["mode"] for r in rows["train"]]
    assert modes.count(Mode.PAIRED) == 7 and modes.count(Mode.X_ONLY) == modes.count(Mode.Y_ONLY) == 3
    x_only = next(r for r in rows["train"] if r["mode"] == Mode.X_ONLY)
    assert not x_only["label"].any()  # the hidden view is a zero placeholder


def test_missing_and_empty_folders_are_refused(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_sit_folder(tmp_path / "nope")
    with pytest.raises(ValueError, match="holds no SIT pairs"):
        read_sit_folder(tmp_path)


def test_embedded_sit_is_generated_once_under_the_cache_root(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LSMSEG_DATA", str(tmp_path))
    folder = embedded_sit(n=6, seed=1)
    assert folder == str(tmp_path / "sit-n6-s1-v1")
    x, y = read_sit_folder(folder)
    assert x.shape == y.shape == (6, 1, 128, 128)
    assert np.array_equal(x, generate_sit(6, seed=1)[0])
    assert embedded_sit(n=6, seed=1) == folder and sorted(p.name for p in tmp_path.iterdir()) == [
        "sit-n6-s1-v1"
    ]
