"""Landmark rows: the 300-W split and proportion protocol, layout detection, inference crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from skimage.io import imsave

from lsmseg.data.faces import generate_faces, render_face, write_300w_layout
from lsmseg.data.landmark_rows import (
    LANDMARKS,
    check_landmark_dir,
    embedded_faces,
    face_inputs,
    landmark_layout,
    load_landmark_rows,
    make_landmark_rows,
    read_landmark_folder,
    to_pixels,
)
from lsmseg.data.w300 import preprocess_face, read_pts, square_crop_box
from lsmseg.keys import Keys, Mode


@pytest.fixture(scope="module")
def w300_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 synthetic faces in the 300-W layout (5 indoor, 5 outdoor)."""
    return write_300w_layout(tmp_path_factory.mktemp("w300"), 10, seed=3)


def _numbered_faces(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Faces whose values encode their index (+1, so no face is all zeros): images and landmarks."""
    ids = (np.arange(n, dtype=np.float32) + 1) / (n + 1)
    images = np.broadcast_to(ids[:, None, None, None], (n, 3, 64, 64)).copy()
    landmarks = np.broadcast_to(ids[:, None], (n, 136)).copy()
    return images, landmarks


def test_split_is_60_20_20_then_the_papers_proportion_protocol() -> None:
    images, landmarks = _numbered_faces(100)
    rows = make_landmark_rows(images, landmarks, proportion=0.2, seed=0)
    assert [len(rows[k]) for k in ("train", "valid", "test")] == [60, 20, 20]
    modes = [r[Keys.MODE] for r in rows["train"]]
    assert modes.count(Mode.PAIRED) == 12 and modes.count(Mode.X_ONLY) == modes.count(Mode.Y_ONLY) == 24

    def face(row: dict, key: str) -> int:
        return round(float(row[key].flat[0]) * 101) - 1  # 0-based face index, -1 for a hidden view

    for row in rows["train"]:
        assert row[Keys.IMAGE].shape == (3, 64, 64) and row[LANDMARKS].shape == (136,)
        mode = Mode(row[Keys.MODE])
        assert (face(row, Keys.IMAGE) >= 0) == mode.has_x and (face(row, LANDMARKS) >= 0) == mode.has_y
    x_faces = {face(r, Keys.IMAGE) for r in rows["train"] if r[Keys.MODE] == Mode.X_ONLY}
    y_faces = {face(r, LANDMARKS) for r in rows["train"] if r[Keys.MODE] == Mode.Y_ONLY}
    paired = {face(r, Keys.IMAGE) for r in rows["train"] if r[Keys.MODE] == Mode.PAIRED}
    assert not x_faces & y_faces and not paired & (x_faces | y_faces)  # the paper's disjoint halves
    assert x_faces | y_faces | paired == set(range(60))
    assert [face(r, LANDMARKS) for r in rows["valid"]] == list(range(60, 80))  # sequential split
    assert [face(r, Keys.IMAGE) for r in rows["test"]] == list(range(80, 100))
    assert all(r[Keys.MODE] == Mode.PAIRED for r in rows["valid"] + rows["test"])
    hidden = next(r for r in rows["train"] if r[Keys.MODE] == Mode.Y_ONLY)
    assert not hidden[Keys.IMAGE].any()  # hidden views are zero-filled


def test_both_layouts_read_the_same_faces(w300_dir: Path, tmp_path: Path) -> None:
    images, landmarks = read_landmark_folder(w300_dir)
    expected_images, expected_landmarks = generate_faces(10, seed=3)
    np.testing.assert_allclose(images, expected_images, atol=1e-6)
    np.testing.assert_allclose(landmarks, expected_landmarks, atol=1e-5)
    np.save(tmp_path / "images.npy", images)
    np.save(tmp_path / "landmarks.npy", landmarks)
    assert landmark_layout(w300_dir) == "300w" and landmark_layout(tmp_path) == "prepared"
    from_300w = load_landmark_rows(w300_dir, proportion=1.0)
    from_arrays = load_landmark_rows(tmp_path, proportion=1.0)
    for a, b in zip(from_300w["test"], from_arrays["test"], strict=True):
        np.testing.assert_array_equal(a[LANDMARKS], b[LANDMARKS])


def test_bad_folders_say_what_is_expected(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_landmark_rows(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="is empty"):
        load_landmark_rows(tmp_path / "empty")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="neither a 300-W layout"):
        load_landmark_rows(tmp_path / "junk")
    with pytest.raises(SystemExit, match=r"lsmseg: error: dataset_dir .* neither"):
        check_landmark_dir(tmp_path / "junk")
    np.save(tmp_path / "junk" / "images.npy", np.zeros((4, 3, 32, 32), np.float32))
    np.save(tmp_path / "junk" / "landmarks.npy", np.zeros((4, 136), np.float32))
    with pytest.raises(ValueError, match=r"expected \(N, 3, 64, 64\)"):
        load_landmark_rows(tmp_path / "junk")


def test_embedded_faces_are_written_once_in_the_300w_layout() -> None:
    folder = Path(embedded_faces(n=6, seed=5))
    assert sorted(p.name for p in folder.iterdir()) == ["01_Indoor", "02_Outdoor"]
    assert len(list(folder.glob("*/*.pts"))) == 6
    stamp = (folder / "01_Indoor" / "indoor_001.png").stat().st_mtime_ns
    assert embedded_faces(n=6, seed=5) == str(folder)
    assert (folder / "01_Indoor" / "indoor_001.png").stat().st_mtime_ns == stamp
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".faces300w-")]  # no temp left


def test_to_pixels_inverts_the_crop() -> None:
    image, points = render_face(np.random.default_rng(7))
    _, landmarks = preprocess_face(image, points)
    x0, y0, side = square_crop_box(points)
    np.testing.assert_allclose(
        to_pixels(landmarks, np.array([x0, y0]), np.array([side, side])), points, atol=1e-4
    )


def test_face_inputs_place_each_crop_in_its_source_image(w300_dir: Path, tmp_path: Path) -> None:
    rows = face_inputs(w300_dir)
    assert [r["name"] for r in rows][:2] == ["indoor_001", "indoor_002"] and len(rows) == 10
    _, landmarks = read_landmark_folder(w300_dir)
    truth = read_pts(w300_dir / "01_Indoor" / "indoor_001.pts")
    np.testing.assert_allclose(
        to_pixels(landmarks[0], rows[0]["origin"], rows[0]["extent"]), truth, atol=1e-3
    )

    crops = tmp_path / "crops"
    crops.mkdir()
    imsave(crops / "wide.png", np.full((40, 80, 3), 128, np.uint8), check_contrast=False)
    imsave(crops / "face.jpg", np.full((64, 64, 3), 200, np.uint8), check_contrast=False)
    plain = face_inputs(crops)
    assert [r["name"] for r in plain] == ["face", "wide"]
    assert plain[1][Keys.IMAGE].shape == (3, 64, 64) and plain[1][Keys.IMAGE].dtype == np.float32
    np.testing.assert_array_equal(plain[1]["extent"], [80, 40])  # (width, height) of the source
    corners = to_pixels(np.array([0.0, 0.0, 1.0, 1.0]), plain[1]["origin"], plain[1]["extent"])
    np.testing.assert_allclose(corners, [[-0.5, -0.5], [79.5, 39.5]])  # the crop's outer edges

    text_only = tmp_path / "text_only"
    text_only.mkdir()
    (text_only / "readme.txt").write_text("no images here")
    with pytest.raises(ValueError, match="no faces"):
        face_inputs(text_only)
