"""Synthetic faces: determinism, ranges, iBUG topology, and landmarks that the image shows."""

from __future__ import annotations

import numpy as np
import pytest

from lsmseg.data.faces import generate_faces, mean_shape, polygon_pixels, render_face
from lsmseg.data.w300 import IBUG_68


@pytest.fixture(scope="module")
def faces() -> tuple[np.ndarray, np.ndarray]:
    return generate_faces(40, seed=0)


def test_shapes_ranges_and_determinism(faces: tuple[np.ndarray, np.ndarray]) -> None:
    images, landmarks = faces
    assert images.shape == (40, 3, 64, 64) and images.dtype == np.float32
    assert landmarks.shape == (40, 136) and landmarks.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1
    assert landmarks.min() >= 0 and landmarks.max() <= 1
    again_images, again_landmarks = generate_faces(3, seed=0)  # face i depends only on (seed, i)
    np.testing.assert_array_equal(again_images, images[:3])
    np.testing.assert_array_equal(again_landmarks, landmarks[:3])
    other_images, _ = generate_faces(3, seed=1)
    assert not np.allclose(other_images, images[:3])


def test_faces_vary(faces: tuple[np.ndarray, np.ndarray]) -> None:
    _, landmarks = faces
    points = landmarks.reshape(-1, 68, 2)
    assert points.std(axis=0).mean() > 0.02  # pose and expression move the landmarks
    mouth_height = points[:, 66, 1] - points[:, 62, 1]
    assert mouth_height.max() > 3 * mouth_height.min()


def test_mean_shape_has_the_ibug_topology() -> None:
    s = mean_shape()
    x, y = s[:, 0], s[:, 1]
    jaw = np.array(IBUG_68["jaw"])
    assert y[jaw].argmax() == 8 and np.all(np.diff(x[jaw]) > 0)  # left ear -> chin -> right ear
    assert x[36] < x[39] < x[42] < x[45]  # eye corners left to right, 36 and 45 outer
    assert y[37] < y[36] < y[41] and y[43] < y[45] < y[47]  # upper lids above corners above lower lids
    assert np.all(y[17:27] < y[36:48].min())  # eyebrows above the eyes
    assert np.all(np.diff(y[27:31]) > 0) and y[30] < y[33]  # bridge top -> tip, base below the tip
    assert y[33] < y[51] < y[62] <= y[66] < y[57] < y[8]  # nose, upper lip, mouth, lower lip, chin
    assert x[48] < x[60] < x[64] < x[54]  # mouth corners outside the inner contour
    np.testing.assert_allclose(s[22:27, 0], -s[17:22, 0][::-1])  # symmetric brows


def test_eyes_and_brows_are_darker_than_cheeks(faces: tuple[np.ndarray, np.ndarray]) -> None:
    images, landmarks = faces
    luminance = images.mean(axis=1)  # (N, 64, 64)
    eye, brow, cheek = [], [], []
    for lum, flat in zip(luminance, landmarks, strict=True):
        p = flat.reshape(68, 2) * 64 - 0.5  # 64x64 pixel coordinates

        def patch(centre: np.ndarray, lum: np.ndarray = lum) -> float:
            col, row = np.round(centre).astype(int)
            return float(lum[row - 1 : row + 2, col - 1 : col + 2].mean())

        eye.append(np.mean([patch(p[36:42].mean(0)), patch(p[42:48].mean(0))]))
        brow.append(np.mean([patch(p[19] + [0, 1]), patch(p[24] + [0, 1])]))  # just under the upper edge
        cheek.append(np.mean([patch((p[36] + p[48] + p[3]) / 3), patch((p[45] + p[54] + p[13]) / 3)]))
    eye_a, brow_a, cheek_a = map(np.asarray, (eye, brow, cheek))
    assert eye_a.mean() < cheek_a.mean() - 0.1
    assert np.mean(eye_a < cheek_a) >= 0.8  # 0.93 over 200 faces; a bright iris in dark skin can invert it
    assert np.mean(brow_a < cheek_a) >= 0.8


def test_face_outline_is_the_jaw() -> None:
    image, points = render_face(np.random.default_rng(7))
    assert image.shape == (128, 128, 3) and image.dtype == np.uint8
    lum = image.mean(axis=-1) / 255.0
    jaw = points[list(IBUG_68["jaw"])]
    centre = points[list(IBUG_68["nose_bridge"])].mean(0)
    inside = [lum[tuple(np.round(centre + 0.85 * (q - centre)).astype(int)[::-1])] for q in jaw]
    outside = [
        lum[tuple(np.clip(np.round(centre + 1.15 * (q - centre)), 0, 127).astype(int)[::-1])] for q in jaw
    ]
    assert np.mean(np.abs(np.subtract(inside, outside)) > 0.03) >= 0.7  # an edge across most jaw points


def test_polygon_pixels_matches_area() -> None:
    square = np.array([[10.0, 10.0], [20.0, 10.0], [20.0, 30.0], [10.0, 30.0]])
    rows, cols = polygon_pixels(square, (64, 64))
    assert len(rows) == 200  # pixel centres in [10, 20) x [10, 30): half-open, so tilings do not overlap
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (10, 29, 10, 19)
    off_canvas = polygon_pixels(square + 100, (64, 64))
    assert len(off_canvas[0]) == 0
    t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    disk = np.stack([32 + 20 * np.cos(t), 32 + 20 * np.sin(t)], axis=1)
    assert abs(len(polygon_pixels(disk, (64, 64))[0]) - np.pi * 400) < 40
