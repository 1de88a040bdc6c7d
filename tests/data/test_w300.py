"""300-W reading, folder discovery and the square-crop preprocessing, on tiny hand-made data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lsmseg.data.faces import generate_faces, write_300w_layout
from lsmseg.data.w300 import find_300w_pairs, load_300w, preprocess_face, read_pts, write_pts

REPO = Path(__file__).resolve().parents[2]


def _points(n: int = 68) -> np.ndarray:
    """(n, 2) 1-based integer-valued coordinates: point i at (10 + i, 200 - i)."""
    i = np.arange(n, dtype=float)
    return np.stack([10.0 + i, 200.0 - i], axis=1)


def test_read_pts_from_other_software(tmp_path: Path) -> None:
    one_based = _points()
    text = "version: 1\r\n n_points:  68  \r\n# exported by some annotation tool\r\n{\r\n"
    text += "".join(f"  {x:g}   {y:g} \t\r\n" for x, y in one_based)
    text += "}\r\n\r\n"
    path = tmp_path / "face.pts"
    path.write_bytes(text.encode())
    points = read_pts(path)
    assert points.shape == (68, 2)
    np.testing.assert_array_equal(points, one_based - 1.0)  # 0-based in memory
    np.testing.assert_array_equal(points[0], [9.0, 199.0])


def test_write_read_round_trip(tmp_path: Path) -> None:
    points = np.random.default_rng(0).uniform(0, 500, (68, 2))
    write_pts(tmp_path / "a.pts", points)
    text = (tmp_path / "a.pts").read_text()
    assert text.startswith("version: 1\nn_points: 68\n{\n") and text.endswith("}\n")
    np.testing.assert_allclose(read_pts(tmp_path / "a.pts"), points, atol=1e-4)
    write_pts(tmp_path / "b.pts", np.zeros((68, 2)))
    assert "1.0000 1.0000" in (tmp_path / "b.pts").read_text()  # 0-based origin is pixel 1 on disk


def test_wrong_point_counts(tmp_path: Path) -> None:
    short = tmp_path / "short.pts"
    short.write_text("version: 1\nn_points: 68\n{\n" + "1 2\n" * 67 + "}\n")
    with pytest.raises(ValueError, match="n_points: 68 but the file holds 67"):
        read_pts(short)
    profile = tmp_path / "profile.pts"
    write_pts(profile, np.zeros((39, 2)))
    with pytest.raises(ValueError, match="holds 39 points, expected 68"):
        read_pts(profile)
    assert read_pts(profile, n_points=39).shape == (39, 2)
    garbage = tmp_path / "garbage.pts"
    garbage.write_text("version: 1\nn_points: 68\n{\n1 2 3\n}\n")
    with pytest.raises(ValueError, match="line 4"):
        read_pts(garbage)


def test_find_pairs_order_and_missing_pts(tmp_path: Path) -> None:
    indoor, outdoor = tmp_path / "300W" / "01_Indoor", tmp_path / "300W" / "02_Outdoor"
    indoor.mkdir(parents=True)
    outdoor.mkdir()
    for name in ("indoor_010.png", "indoor_002.jpg", "indoor_001.png", "indoor_003.png"):
        (indoor / name).touch()
    for name in ("indoor_010.pts", "indoor_002.pts", "indoor_001.pts", "notes.txt"):
        (indoor / name).touch()
    (outdoor / "outdoor_001.png").touch()
    (outdoor / "outdoor_001.pts").touch()
    with pytest.warns(UserWarning, match="indoor_003"):
        pairs = find_300w_pairs(tmp_path)  # one folder down, as the archive unpacks
    assert [image.name for image, _ in pairs] == [
        "indoor_001.png",
        "indoor_002.jpg",
        "indoor_010.png",
        "outdoor_001.png",
    ]
    assert all(pts == image.with_suffix(".pts") for image, pts in pairs)
    assert find_300w_pairs(outdoor) == []


def test_preprocess_crops_the_square_box() -> None:
    image = np.random.default_rng(0).uniform(0, 1, (100, 200, 3))
    points = np.random.default_rng(1).uniform([50, 40], [150, 60], (68, 2))
    points[0], points[1] = (50, 40), (150, 60)  # box 100 wide, 20 high -> square 101 px, centre (100, 50)
    crop, landmarks = preprocess_face(image, points)
    assert crop.shape == (3, 64, 64) and crop.dtype == np.float32
    assert landmarks.shape == (136,) and landmarks.dtype == np.float32
    assert landmarks.min() >= 0.0 and landmarks.max() <= 1.0
    uv = landmarks.reshape(68, 2)
    # x: crop columns 50..150 (edges 49.5..150.5); y: rows 0..100, the square's height centred on y 50.
    np.testing.assert_allclose(uv[0], [(50 - 49.5) / 101, (40 + 0.5) / 101], rtol=1e-6)
    np.testing.assert_allclose(uv[1], [(150 - 49.5) / 101, (60 + 0.5) / 101], rtol=1e-6)
    np.testing.assert_allclose(((points - [49.5, -0.5]) / 101).reshape(-1), landmarks, rtol=1e-5)


def test_known_point_lands_on_its_pixel() -> None:
    image = np.zeros((240, 240, 3), dtype=np.uint8)
    image[78:83, 118:123] = 255  # bright 5x5 blob centred on (x, y) = (120, 80)
    points = np.random.default_rng(2).uniform(60, 180, (68, 2))
    points[7] = (120.0, 80.0)
    crop, landmarks = preprocess_face(image, points)
    u, v = landmarks[14:16] * 64 - 0.5  # point 7 in 64x64 pixel coordinates
    row, col = np.unravel_index(crop[0].argmax(), crop[0].shape)
    assert abs(col - u) <= 0.75 and abs(row - v) <= 0.75


def test_padding_where_the_square_leaves_the_image() -> None:
    white = np.ones((50, 200, 3))
    points = np.stack([np.linspace(0, 199, 68), np.linspace(10, 40, 68)], axis=1)  # square taller than image
    edge, _ = preprocess_face(white, points)
    black, _ = preprocess_face(white, points, pad_mode="constant")
    np.testing.assert_allclose(edge, 1.0, atol=1e-6)
    assert black[:, :10].max() < 1e-6 and black[:, 32].min() > 0.999  # top rows padded, middle is image


def test_image_types_agree() -> None:
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (120, 100, 3), dtype=np.uint8)
    points = rng.uniform(10, 90, (68, 2))
    from_uint8, lm = preprocess_face(rgb, points)
    from_float, lm2 = preprocess_face(rgb / 255.0, points)
    np.testing.assert_allclose(from_uint8, from_float, atol=1e-6)
    np.testing.assert_array_equal(lm, lm2)
    grey, _ = preprocess_face(rgb[..., 0], points)
    np.testing.assert_allclose(grey[1], from_uint8[0], atol=1e-6)


def test_load_300w_reads_a_written_layout(tmp_path: Path) -> None:
    write_300w_layout(tmp_path, n=5, seed=4)
    pairs = find_300w_pairs(tmp_path)
    assert [image.stem for image, _ in pairs] == [
        "indoor_001",
        "indoor_002",
        "indoor_003",
        "outdoor_001",
        "outdoor_002",
    ]
    images, landmarks = load_300w(tmp_path)
    expected_images, expected_landmarks = generate_faces(5, seed=4)
    assert images.shape == (5, 3, 64, 64) and landmarks.shape == (5, 136)
    np.testing.assert_allclose(landmarks, expected_landmarks, atol=1e-6)
    np.testing.assert_allclose(images, expected_images, atol=1e-6)


def test_load_300w_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="01_Indoor"):
        load_300w(tmp_path)


@pytest.mark.slow
def test_prepare_300w_script(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    write_300w_layout(src, n=4, seed=5)
    (src / "02_Outdoor" / "outdoor_002.pts").write_text("version: 1\nn_points: 68\n{\n1 1\n}\n")  # broken
    script = str(REPO / "data_prep" / "prepare_300w.py")
    done = subprocess.run(
        [sys.executable, script, "--src", str(src), "--out", str(out)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "skipped outdoor_002" in done.stderr
    images, landmarks = np.load(out / "images.npy"), np.load(out / "landmarks.npy")
    assert images.shape == (3, 3, 64, 64) and images.dtype == np.float32
    assert landmarks.shape == (3, 136) and landmarks.dtype == np.float32
    assert (out / "ids.txt").read_text().split() == ["indoor_001", "indoor_002", "outdoor_001"]
    np.testing.assert_allclose(landmarks, generate_faces(3, seed=5)[1], atol=1e-6)

    empty = subprocess.run(
        [sys.executable, script, "--src", str(out), "--out", str(out)], capture_output=True, text=True
    )
    assert empty.returncode == 2 and "no 300-W faces" in empty.stderr
