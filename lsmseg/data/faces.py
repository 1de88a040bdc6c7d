"""Synthetic 300-W-like faces: the embedded default data set of the landmark experiment.

300-W cannot ship with the package, so the landmark domain has a stand-in that exercises the same
code: a parametric face with 68 points in the iBUG layout (``lsmseg.data.w300.IBUG_68``), posed in
3D (in-plane rotation, yaw, pitch, scale, translation) with an expression (mouth opening, smile,
eyebrow raise), rendered at 128x128 so that every landmark sits on a visible feature (jaw contour
against background and neck, dark eyebrows, eyes with sclera and iris, nose shadow and nostrils,
coloured lips), then cropped and resized by ``w300.preprocess_face`` exactly as real faces are.

Face coordinates: x to the image right, y down, z towards the camera, in units of the jaw
half-width; the face is orthographically projected after the pose rotation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from lsmseg.data.w300 import IBUG_68, IMAGE_SIZE, N_POINTS, preprocess_face, write_pts

RENDER_SIZE = 128  # side of the full synthetic photograph, pixels


def _canonical_shape_3d() -> np.ndarray:
    """(68, 3) neutral face in face coordinates, built from simple curves in the iBUG order."""
    pts = np.zeros((N_POINTS, 3))
    # Jaw 0-16: a squared ellipse from ear level (image left) through the chin (8) to ear level.
    phi = np.linspace(-np.pi / 2, np.pi / 2, 17)
    s = np.sin(phi)
    pts[IBUG_68["jaw"]] = np.stack(
        [np.sign(s) * np.abs(s) ** 0.7, -0.3 + 1.3 * np.cos(phi), 0.8 * np.cos(phi)], axis=1
    )
    # Eyebrows: arcs peaking at the outer third; 17-21 outer -> inner, 22-26 mirrored inner -> outer.
    t = np.linspace(0.0, 1.0, 5)
    brow_x = -0.88 + 0.72 * t
    brow = np.stack([brow_x, -0.55 - 0.12 * np.sin(np.pi * (0.25 + 0.75 * t)), 0.55 + 0.3 * t], axis=1)
    pts[IBUG_68["right_eyebrow"]] = brow
    pts[IBUG_68["left_eyebrow"]] = brow[::-1] * np.array([-1.0, 1.0, 1.0])
    # Nose bridge 27-30 (top -> tip) and nostril base 31-35 (image left -> right).
    pts[IBUG_68["nose_bridge"]] = np.stack(
        [np.zeros(4), np.linspace(-0.32, 0.18, 4), np.linspace(0.95, 1.3, 4)], axis=1
    )
    pts[IBUG_68["nostrils"]] = np.stack(
        [np.linspace(-0.2, 0.2, 5), [0.26, 0.3, 0.32, 0.3, 0.26], [1.0, 1.07, 1.15, 1.07, 1.0]], axis=1
    )
    # Eyes: corners and two points on each lid, clockwise in the image from the left corner.
    half_w, half_h = 0.19, 0.075
    lid = np.array([[-1, 0], [-1 / 3, -1], [1 / 3, -1], [1, 0], [1 / 3, 1], [-1 / 3, 1]]) * [half_w, half_h]
    for name, centre_x in (("right_eye", -0.45), ("left_eye", 0.45)):
        pts[IBUG_68[name], :2] = lid + np.array([centre_x, -0.3])
        pts[IBUG_68[name], 2] = 0.72
    # Lips: outer contour 48-59 from the left corner over the top, inner contour 60-67.
    w = 0.36
    outer = [
        (-1.0, 0.0), (-0.6, -0.1), (-0.25, -0.14), (0.0, -0.11), (0.25, -0.14), (0.6, -0.1),
        (1.0, 0.0), (0.6, 0.12), (0.25, 0.17), (0.0, 0.18), (-0.25, 0.17), (-0.6, 0.12),
    ]  # fmt: skip
    inner = [
        (-0.85, 0.0), (-0.3, -0.03), (0.0, -0.03), (0.3, -0.03),
        (0.85, 0.0), (0.3, 0.03), (0.0, 0.03), (-0.3, 0.03),
    ]  # fmt: skip
    lips = np.array(outer + inner) * [w, 1.0] + [0.0, 0.62]
    pts[48:68, :2] = lips
    pts[48:68, 2] = 0.95 - 0.25 * (lips[:, 0] / w) ** 2
    return pts


_CANONICAL = _canonical_shape_3d()


def mean_shape() -> np.ndarray:
    """(68, 2) neutral frontal face in face coordinates (x right, y down, jaw half-width 1)."""
    return _CANONICAL[:, :2].copy()


@dataclass
class FaceParams:
    """Pose, expression and appearance of one synthetic face (ranges: ``sample_face_params``)."""

    roll: float  # in-plane rotation, radians
    yaw: float  # rotation about the vertical axis, radians
    pitch: float  # rotation about the horizontal axis, radians
    scale: float  # pixels per face unit (jaw half-width) on the render canvas
    centre: tuple[float, float]  # (x, y) pixel position of the face origin on the canvas
    mouth_open: float  # lower lip and chin drop, face units
    smile: float  # mouth corners up and out, face units
    brow_raise: float  # eyebrows up, face units
    gaze: float  # iris shift as a fraction of the eye half-width
    skin: np.ndarray  # (3,) RGB in [0, 1]
    hair: np.ndarray | None  # (3,) RGB, None for a bald head
    hairline: float  # y of the hairline, face units
    hair_length: float  # y of the lower edge of the hair behind the head, face units
    lips: np.ndarray  # (3,) RGB
    iris: np.ndarray  # (3,) RGB
    clothes: np.ndarray  # (3,) RGB
    background: np.ndarray  # (3,) RGB base colour
    light_angle: float  # direction the light comes from, radians in the image plane
    light_strength: float  # relative brightness change across the face
    brightness: float  # global exposure factor
    noise: float  # std of additive Gaussian pixel noise


def sample_face_params(rng: np.random.Generator, render_size: int = RENDER_SIZE) -> FaceParams:
    """Draw one face: poses within +-20 deg roll, +-25 deg yaw, +-12 deg pitch; mixed skin tones."""
    tone = rng.uniform()
    skin = (1 - tone) * np.array([0.36, 0.22, 0.15]) + tone * np.array([0.96, 0.80, 0.69])
    skin = np.clip(skin + rng.normal(0.0, 0.03, 3), 0.0, 1.0)
    hair_colours = np.array(
        [[0.08, 0.06, 0.05], [0.3, 0.2, 0.12], [0.75, 0.6, 0.35], [0.55, 0.25, 0.1], [0.6, 0.6, 0.6]]
    )
    hair = np.clip(hair_colours[rng.integers(len(hair_colours))] + rng.normal(0.0, 0.04, 3), 0.0, 1.0)
    iris_colours = np.array([[0.3, 0.18, 0.08], [0.25, 0.4, 0.6], [0.3, 0.45, 0.25], [0.12, 0.08, 0.05]])
    size = render_size  # pose ranges scale with the canvas
    return FaceParams(
        roll=np.deg2rad(rng.uniform(-20, 20)),
        yaw=np.deg2rad(rng.uniform(-25, 25)),
        pitch=np.deg2rad(rng.uniform(-12, 12)),
        scale=rng.uniform(0.27, 0.38) * size,
        centre=(size * (0.5 + rng.uniform(-0.08, 0.08)), size * (0.47 + rng.uniform(-0.08, 0.08))),
        mouth_open=rng.uniform(0.0, 0.22) * (rng.uniform() < 0.6),
        smile=rng.uniform(-0.04, 0.1),
        brow_raise=rng.uniform(-0.04, 0.1),
        gaze=rng.uniform(-0.3, 0.3),
        skin=skin,
        hair=None if rng.uniform() < 0.15 else hair,
        hairline=rng.uniform(-1.1, -0.85),
        hair_length=rng.uniform(-0.3, 1.2),
        lips=np.clip(skin * [0.8, 0.5, 0.5] + [0.12, 0.0, 0.03] + rng.normal(0.0, 0.03, 3), 0.0, 1.0),
        iris=np.clip(iris_colours[rng.integers(len(iris_colours))] + rng.normal(0.0, 0.03, 3), 0.0, 1.0),
        clothes=rng.uniform(0.05, 0.95, 3),
        background=rng.uniform(0.05, 0.95, 3),
        light_angle=rng.uniform(0, 2 * np.pi),
        light_strength=rng.uniform(0.0, 0.35),
        brightness=rng.uniform(0.75, 1.15),
        noise=rng.uniform(0.0, 0.04),
    )


def _expression(params: FaceParams) -> np.ndarray:
    """(68, 3) canonical points moved by the mouth opening, the smile and the eyebrow raise."""
    pts = _CANONICAL.copy()
    jaw = np.array(IBUG_68["jaw"])
    pts[jaw, 1] += params.mouth_open * 0.8 * np.cos(np.linspace(-np.pi / 2, np.pi / 2, 17)) ** 2
    pts[[55, 56, 57, 58, 59, 65, 66, 67], 1] += params.mouth_open
    pts[[48, 54, 60, 64], 1] -= params.smile
    pts[[49, 53, 55, 59], 1] -= params.smile / 2
    pts[48:68, 0] *= 1.0 + params.smile
    pts[17:27, 1] -= params.brow_raise
    return pts


class _Camera:
    """Pose rotation (roll * pitch * yaw) about the head centre, then scale and shift to pixels."""

    _PIVOT = np.array([0.0, 0.2, 0.0])  # rotation centre in face units

    def __init__(self, params: FaceParams) -> None:
        cy, sy = np.cos(params.yaw), np.sin(params.yaw)
        cp, sp = np.cos(params.pitch), np.sin(params.pitch)
        cr, sr = np.cos(params.roll), np.sin(params.roll)
        yaw = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
        pitch = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
        roll = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
        self.rotation = roll @ pitch @ yaw
        self.scale = params.scale
        self.centre = np.asarray(params.centre)

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """(K, 3) face coordinates (or (K, 2) with z = 0) -> (K, 2) pixel (x, y)."""
        if points.shape[1] == 2:
            points = np.concatenate([points, np.zeros((len(points), 1))], axis=1)
        rotated = (points - self._PIVOT) @ self.rotation.T + self._PIVOT
        return rotated[:, :2] * self.scale + self.centre


def _ellipse(centre: np.ndarray | tuple[float, float], rx: float, ry: float, n: int = 32) -> np.ndarray:
    """(n, 2) points on an axis-aligned ellipse."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([centre[0] + rx * np.cos(t), centre[1] + ry * np.sin(t)], axis=1)


def polygon_pixels(polygon: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the pixel centres inside a (K, 2) (x, y) polygon, even-odd rule, clipped to ``shape``.

    A scanline fill vectorised over rows and edges: O(rows * (edges + width)) instead of the
    O(rows * width * edges) point-in-polygon test of ``skimage.draw.polygon``, which dominated
    the rendering time for head-sized shapes.
    """
    height, width = shape
    x0, y0 = polygon[:, 0], polygon[:, 1]
    x1, y1 = np.r_[x0[1:], x0[:1]], np.r_[y0[1:], y0[:1]]  # each vertex's successor
    rows = np.arange(max(int(np.ceil(y0.min())), 0), min(int(np.floor(y0.max())), height - 1) + 1)
    y = rows[:, None].astype(float)  # (R, 1)
    crosses = (y0 <= y) != (y1 <= y)  # (R, K): half-open in y, so a vertex is counted once
    with np.errstate(divide="ignore", invalid="ignore"):
        xs = np.where(crosses, x0 + (y - y0) * (x1 - x0) / (y1 - y0), np.inf)  # (R, K) crossings
    r_idx, k_idx = np.nonzero(crosses)
    toggles = np.zeros((rows.size, width + 1), dtype=np.int32)
    np.add.at(toggles, (r_idx, np.clip(np.ceil(xs[r_idx, k_idx]), 0, width).astype(int)), 1)
    rr, cc = np.nonzero(np.cumsum(toggles[:, :width], axis=1) % 2)  # inside after an odd count
    return rows[rr], cc


class _Canvas:
    """An (H, W, 3) float image with alpha-blended polygon fills; polygons are (K, 2) (x, y) pixels."""

    def __init__(self, image: np.ndarray) -> None:
        self.image = image
        self.shape = image.shape[:2]

    def mask(self, polygon: np.ndarray) -> np.ndarray:
        out = np.zeros(self.shape, dtype=bool)
        out[polygon_pixels(polygon, self.shape)] = True
        return out

    def fill(self, region: np.ndarray, colour: np.ndarray | float, alpha: float = 1.0) -> None:
        """Blend ``colour`` into a (K, 2) polygon or an (H, W) bool mask."""
        index = region if region.dtype == bool else polygon_pixels(region, self.shape)
        if alpha == 1.0:
            self.image[index] = colour
        else:
            self.image[index] = (1 - alpha) * self.image[index] + alpha * np.asarray(colour)

    def line(self, points: np.ndarray, colour: np.ndarray | float, width: float) -> None:
        """A polyline of ``width`` pixels through (K, 2) points, drawn as one strip polygon."""
        tangent = np.gradient(points, axis=0)  # (K, 2) central differences, one-sided at the ends
        normal = tangent[:, ::-1] * [-1.0, 1.0]
        normal *= width / 2 / np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-6)
        self.fill(np.concatenate([points + normal, (points - normal)[::-1]]), colour)


def _background(rng: np.random.Generator, base: np.ndarray, size: int) -> np.ndarray:
    """(size, size, 3) base colour + linear gradient + low-frequency colour texture."""
    yy, xx = np.mgrid[0:size, 0:size] / size - 0.5
    angle = rng.uniform(0, 2 * np.pi)
    gradient = rng.uniform(0.0, 0.4) * (xx * np.cos(angle) + yy * np.sin(angle))
    cells = int(rng.integers(3, 17))
    # Bilinear upsampling of a (cells, cells, 3) noise grid as two small matrix products.
    up = np.stack([np.interp(np.linspace(0, cells - 1, size), np.arange(cells), e) for e in np.eye(cells)], 1)
    texture = np.stack([up @ grid @ up.T for grid in rng.normal(0.0, 1.0, (3, cells, cells))], axis=-1)
    return base + gradient[..., None] + rng.uniform(0.0, 0.15) * texture


def render_face(rng: np.random.Generator, render_size: int = RENDER_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Render one synthetic face photograph.

    Returns:
        image: (render_size, render_size, 3) uint8 RGB.
        points: (68, 2) float64 0-based (x, y) pixel coordinates of the iBUG landmarks, rounded to
            1e-4 px (the precision ``write_pts`` keeps, so files reproduce them).
    """
    p = sample_face_params(rng, render_size)
    camera = _Camera(p)
    face3d = _expression(p)
    points = np.round(camera(face3d), 4)  # (68, 2)
    canvas = _Canvas(_background(rng, p.background, render_size))
    _paint_head(canvas, camera, points, p)
    _paint_eyes(canvas, points, p)
    _paint_brows_and_nose(canvas, camera, face3d, points, p)
    _paint_mouth(canvas, camera, face3d, points, p)
    return _expose(rng, canvas.image, p), points


def _paint_head(canvas: _Canvas, camera: _Camera, points: np.ndarray, p: FaceParams) -> None:
    """Hair behind the head, clothes, neck, then the skin (shaded towards the outline) and fringe."""
    # Head outline: jaw (left ear -> chin -> right ear), closed by a forehead arc over the top.
    arc = np.linspace(0, np.pi, 11)[1:-1]
    forehead = np.stack([np.cos(arc), -0.3 - np.sin(arc), 0.7 * np.sin(arc)], axis=1)
    head = np.concatenate([points[IBUG_68["jaw"]], camera(forehead)])
    if p.hair is not None:  # hair behind the head
        top, bottom = p.hairline - 0.6, p.hair_length + 0.1  # face units, above the hairline to the ends
        back = _ellipse((0.0, (top + bottom) / 2), 1.2, (bottom - top) / 2)
        canvas.fill(camera(back), p.hair)
    canvas.fill(camera(np.array([[-2.6, 1.75], [2.6, 1.75], [2.8, 4.0], [-2.8, 4.0]])), p.clothes)
    canvas.fill(camera(np.array([[-0.5, 0.4], [0.5, 0.4], [0.55, 1.9], [-0.55, 1.9]])), p.skin * 0.55)

    # Skin, shaded darker towards the outline so the jaw contour reads as a 3D edge.
    rr, cc = polygon_pixels(head, canvas.shape)
    cos, sin = np.cos(p.roll), np.sin(p.roll)
    dx, dy = (cc - p.centre[0]) / p.scale, (rr - p.centre[1]) / p.scale
    radius = np.hypot(cos * dx + sin * dy, (-sin * dx + cos * dy + 0.15) / 1.15)  # 1 on the outline
    canvas.image[rr, cc] = p.skin * (1.0 - 0.2 * np.clip(radius, 0, 1)[:, None] ** 3)
    if p.hair is not None:  # fringe: the part of a head-sized ellipse above the hairline
        cap = _ellipse((0.0, -0.45), 1.1, 1.05, 48)
        cap[:, 1] = np.minimum(cap[:, 1], p.hairline)
        canvas.fill(camera(np.concatenate([cap, np.full((48, 1), 0.6)], axis=1)), p.hair)


def _paint_eyes(canvas: _Canvas, points: np.ndarray, p: FaceParams) -> None:
    """Socket shadow, sclera, iris and pupil clipped to the lids, dark lid lines."""
    lid_width = max(1.0, 0.035 * p.scale)
    for name in ("right_eye", "left_eye"):
        eye = points[IBUG_68[name]]
        centre = eye.mean(axis=0)
        canvas.fill((eye - centre) * [1.5, 2.6] + centre, p.skin * 0.72, alpha=0.5)
        eye_mask = canvas.mask(eye)
        canvas.fill(eye_mask, np.array([0.92, 0.9, 0.86]))
        half_h = float(np.linalg.norm(eye[1:3].mean(axis=0) - eye[4:6].mean(axis=0))) / 2
        iris_centre = centre + (eye[3] - eye[0]) / 2 * p.gaze
        iris = _ellipse(iris_centre, 1.2 * half_h + 0.3, 1.2 * half_h + 0.3, 16)
        canvas.fill(canvas.mask(iris) & eye_mask, p.iris)
        canvas.fill(canvas.mask(_ellipse(iris_centre, 0.5 * half_h, 0.5 * half_h, 12)) & eye_mask, 0.03)
        canvas.line(eye[[0, 1, 2, 3]], 0.08, lid_width * 1.3)
        canvas.line(eye[[3, 4, 5, 0]], p.skin * 0.45, lid_width * 0.7)


def _paint_brows_and_nose(
    canvas: _Canvas, camera: _Camera, face3d: np.ndarray, points: np.ndarray, p: FaceParams
) -> None:
    """Eyebrows, then the nose: bridge shadow away from the light, base, nostrils."""
    # A band hanging from the landmark curve (iBUG marks the upper edge), darkened hair colour.
    brow_colour = (p.hair if p.hair is not None else p.skin * 0.5) * 0.6
    for name in ("right_eyebrow", "left_eyebrow"):
        brow = face3d[IBUG_68[name]]
        canvas.fill(
            np.concatenate([points[IBUG_68[name]], camera(brow + np.array([0.0, 0.08, 0.0]))[::-1]]),
            brow_colour,
        )
    away = -np.sign(np.cos(p.light_angle) + 1e-6) * 0.07
    canvas.line(camera(face3d[IBUG_68["nose_bridge"]] + [away, 0.0, 0.0]), p.skin * 0.7, 0.05 * p.scale)
    canvas.fill(points[[31, 32, 33, 34, 35, 30]], p.skin * 0.85, alpha=0.6)
    for side in (32, 34):
        nostril = 0.7 * face3d[side] + 0.3 * face3d[30]
        canvas.fill(camera(np.c_[_ellipse(nostril, 0.055, 0.03, 12), np.full(12, nostril[2])]), 0.1)


def _paint_mouth(
    canvas: _Canvas, camera: _Camera, face3d: np.ndarray, points: np.ndarray, p: FaceParams
) -> None:
    """Lips, then the opening (dark, with upper teeth) between the inner contours."""
    canvas.fill(points[48:60], p.lips)
    canvas.fill(points[[48, 49, 50, 51, 52, 53, 54, 64, 63, 62, 61, 60]], p.lips * 0.85)
    opening = canvas.mask(points[60:68])
    canvas.fill(opening, np.array([0.25, 0.06, 0.06]))
    if p.mouth_open > 0.05:
        teeth = np.concatenate(
            [face3d[[60, 61, 62, 63, 64]], face3d[[64, 63, 62, 61, 60]] + [0.0, 0.06, 0.0]]
        )
        canvas.fill(canvas.mask(camera(teeth)) & opening, np.array([0.92, 0.9, 0.82]))
    canvas.line(points[[60, 61, 62, 63, 64]], p.lips * 0.4, max(1.0, 0.02 * p.scale))


def _expose(rng: np.random.Generator, image: np.ndarray, p: FaceParams) -> np.ndarray:
    """(H, W, 3) float RGB -> uint8: lighting gradient, exposure, lens blur and sensor noise."""
    size = image.shape[0]
    yy, xx = np.mgrid[0:size, 0:size]
    light = np.cos(p.light_angle) * (xx - p.centre[0]) + np.sin(p.light_angle) * (yy - p.centre[1])
    light = p.brightness * (1 + p.light_strength * light / (2 * p.scale))  # (H, W) gain, +-strength/2
    image = image * light[..., None]
    image = gaussian_filter(image, sigma=(0.6, 0.6, 0))
    image = image + rng.normal(0.0, p.noise, image.shape)
    return (np.clip(image, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def _face_rngs(n: int, seed: int) -> list[np.random.Generator]:
    """One generator per face, so face i depends only on (seed, i)."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n)]


def generate_faces(
    n: int, seed: int = 0, size: int = IMAGE_SIZE, render_size: int = RENDER_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` synthetic faces, rendered and preprocessed like 300-W (``w300.preprocess_face``).

    Deterministic: face i depends only on ``seed`` and i, so ``generate_faces(k, s)`` is the
    first k faces of ``generate_faces(n, s)``.

    Returns:
        images: (n, 3, size, size) float32 in [0, 1].
        landmarks: (n, 136) float32 in [0, 1], interleaved (x0, y0, x1, y1, ...).
    """
    images = np.empty((n, 3, size, size), dtype=np.float32)
    landmarks = np.empty((n, 2 * N_POINTS), dtype=np.float32)
    for i, rng in enumerate(_face_rngs(n, seed)):
        images[i], landmarks[i] = preprocess_face(*render_face(rng, render_size), size=size)
    return images, landmarks


def write_300w_layout(root: str | Path, n: int, seed: int = 0, render_size: int = RENDER_SIZE) -> Path:
    """Write ``n`` synthetic faces as a 300-W folder: ``01_Indoor/indoor_001.png`` + ``.pts``, ...

    The first ceil(n / 2) faces go to 01_Indoor, the rest to 02_Outdoor, numbered from 001, so
    ``w300.load_300w(root)`` returns the faces of ``generate_faces(n, seed)`` in the same order.
    Returns ``root``.
    """
    from skimage.io import imsave

    root = Path(root)
    n_indoor = (n + 1) // 2
    for i, rng in enumerate(_face_rngs(n, seed)):
        folder, prefix, number = (
            ("01_Indoor", "indoor", i + 1) if i < n_indoor else ("02_Outdoor", "outdoor", i - n_indoor + 1)
        )
        image, points = render_face(rng, render_size)
        (root / folder).mkdir(parents=True, exist_ok=True)
        imsave(root / folder / f"{prefix}_{number:03d}.png", image, check_contrast=False)
        write_pts(root / folder / f"{prefix}_{number:03d}.pts", points)
    return root
