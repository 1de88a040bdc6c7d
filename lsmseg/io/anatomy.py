"""Anatomy gate: is this an abdominal slice, and can its level be L3?

A segmentation model measures whatever it is given; a head or a chest slice gives "muscle" and
"fat" areas that look like numbers. Clinical tools gate the series before measuring (the MGH/DFCI
body-composition tool, Comp2Comp): this module does the same with a few robust image features,
computed on the body mask (:func:`lsmseg.io.body.body_mask`) in Hounsfield units.

Refused (:class:`IngestError`), each with the feature behind the verdict:
    * head: a closed ring of bone (the skull) enclosing most of the body, with almost no fat;
    * thorax: air-filled lungs inside the body (internal air over ``THORAX_AIR_FRACTION``);
    * pelvis below the hips or legs: two or more separate body contours of similar size;
    * non-human: a body without a fat compartment (a phantom, an object, an animal scan).

Flagged (returned as warnings, the case is still measured): slices whose vertebral level cannot
be confirmed as L3: no vertebra near the midline, or bone lateral to the spine on both sides
(ribs above L2, iliac wings below L4). lsmseg does not locate vertebrae itself; a warning asks a
reader to check the overlay.

Thresholds come from the anatomy, not from a fit: at L3 the subcutaneous and visceral fat make
up 20-60 % of the body area in adults (Shen et al., J Appl Physiol 2004; Mourtzakis et al., Appl
Physiol Nutr Metab 2008), lungs are absent, and the body is one contour.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from lsmseg.io.body import BODY_THRESHOLD_HU, body_mask
from lsmseg.io.ctslice import CTSlice, IngestError
from lsmseg.keys import ADIPOSE_HU

BONE_HU = 300.0  # cortical bone and dense trabecular bone; contrast-filled vessels stay mostly below
AIR_HU = -400.0  # lung parenchyma (about -850) and gas; fat (-190..-30) and soft tissue stay above
# A skull encloses the brain: the bone ring's filled interior covers most of a head slice. The
# vertebral body at L3 encloses a few percent of the abdomen at most.
SKULL_ENCLOSED_FRACTION = 0.4
# Fat below this fraction of the body area: no subcutaneous fat compartment. Lean adults still
# have > 5 % fat at L3; a head has almost none (scalp only).
MIN_FAT_FRACTION = 0.03
# A head still shows scalp fat and partial-volume pixels in the fat range (about 6 % on a real
# head CT); an abdomen inside a bone ring is impossible, so the head test allows up to this much.
HEAD_MAX_FAT_FRACTION = 0.15
# Lungs fill 30-60 % of a thorax slice; bowel gas at L3 rarely reaches 10 %.
THORAX_AIR_FRACTION = 0.15
# A second body contour at least this fraction of the largest one: two legs, or a pelvis cut
# below the hips (an arm beside the abdomen is much smaller).
SECOND_CONTOUR_FRACTION = 0.3
MIN_CONTOUR_CM2 = 20.0  # smaller pieces are arms' tips, tubes, clothing
MIN_BONE_CM2 = 0.3  # smaller bone pieces are calcifications or contrast
# Bone whose centre is further than this fraction of the body width from the spine's column is
# outside the spine: ribs (at L2 and above) or iliac wings (L4 and below).
LATERAL_BONE_FRACTION = 0.2
# Ribs and iliac wings lie in the body wall (depth: 0 at the skin, 1 at the body's deepest point)
# and are cortical bone; oral contrast in bowel loops (300-360 HU) lies deeper and is less dense.
WALL_DEPTH = 0.35
WALL_BONE_HU = 380.0


@dataclass(frozen=True)
class AnatomyFeatures:
    """What the gate measured on one slice (fractions of the body area unless named otherwise)."""

    body_area_cm2: float
    fat_fraction: float  # pixels in ADIPOSE_HU
    internal_air_fraction: float  # pixels below AIR_HU inside the body contour
    skull_enclosed_fraction: float  # interior of closed bone rings
    contours: int  # body contours of at least SECOND_CONTOUR_FRACTION of the largest
    second_contour_fraction: float  # second-largest contour / largest (0 when one)
    midline_bone: bool  # a bone piece near the body's centre column (the vertebra)
    lateral_bone_sides: int  # 0, 1 or 2: sides with bone in the body wall (ribs, iliac wings)


def _contours(hu: np.ndarray, px_cm2: float) -> list[float]:
    """Areas (cm2) of the body contours above MIN_CONTOUR_CM2, largest first (holes filled)."""
    labels, n = ndimage.label(np.asarray(hu) > BODY_THRESHOLD_HU)
    if n == 0:
        return []
    filled = ndimage.binary_fill_holes(labels > 0)
    labels, n = ndimage.label(filled)
    sizes = np.bincount(labels.ravel())[1:] * px_cm2
    return sorted((float(s) for s in sizes if s >= MIN_CONTOUR_CM2), reverse=True)


def _bone_features(hu: np.ndarray, body: np.ndarray, px_cm2: float) -> tuple[float, bool, int]:
    """(skull-enclosed fraction of the body, bone at the midline, sides with bone in the wall)."""
    bone = (hu > BONE_HU) & ndimage.binary_dilation(body, iterations=2)
    area = float(body.sum())
    enclosed = float((ndimage.binary_fill_holes(bone) & ~bone).sum()) / max(area, 1.0)
    cols = np.nonzero(body.any(axis=0))[0]
    if cols.size == 0:
        return enclosed, False, 0
    centre, width = (cols[0] + cols[-1]) / 2, max(float(cols[-1] - cols[0]), 1.0)
    depth = ndimage.distance_transform_edt(body)
    depth = depth / max(float(depth.max()), 1.0)  # 0 at the skin, 1 at the body's deepest point
    labels, n = ndimage.label(bone)
    midline, sides = False, set()
    for k in range(1, n + 1):
        piece = labels == k
        if float(piece.sum()) * px_cm2 < MIN_BONE_CM2:
            continue
        offset = (float(np.nonzero(piece)[1].mean()) - centre) / width
        if abs(offset) <= LATERAL_BONE_FRACTION:
            midline = True
        elif float(hu[piece].mean()) >= WALL_BONE_HU and float(depth[piece].mean()) <= WALL_DEPTH:
            sides.add(offset > 0)
    return enclosed, midline, len(sides)


def anatomy_features(ct: CTSlice) -> AnatomyFeatures:
    """Measure the gate's features on a slice (see :class:`AnatomyFeatures`)."""
    hu = np.asarray(ct.hu, dtype=np.float32)
    px_cm2 = ct.pixel_area_mm2 / 100.0
    body = body_mask(hu)
    area = max(float(body.sum()), 1.0)
    fat = float(((hu >= ADIPOSE_HU[0]) & (hu <= ADIPOSE_HU[1]) & body).sum()) / area
    air = float(((hu < AIR_HU) & body).sum()) / area
    enclosed, midline, sides = _bone_features(hu, body, px_cm2)
    contours = _contours(hu, px_cm2)
    second = contours[1] / contours[0] if len(contours) > 1 else 0.0
    return AnatomyFeatures(
        body_area_cm2=area * px_cm2,
        fat_fraction=fat,
        internal_air_fraction=air,
        skull_enclosed_fraction=enclosed,
        contours=sum(c >= SECOND_CONTOUR_FRACTION * contours[0] for c in contours),
        second_contour_fraction=second,
        midline_bone=midline,
        lateral_bone_sides=sides,
    )


def _refusal(f: AnatomyFeatures) -> str | None:
    """Why the slice is not an abdomen, in a clinician's words; None when it may be one."""
    if f.skull_enclosed_fraction >= SKULL_ENCLOSED_FRACTION and f.fat_fraction < HEAD_MAX_FAT_FRACTION:
        return (
            f"a head slice, not the abdomen: a closed bone ring (skull) encloses "
            f"{100 * f.skull_enclosed_fraction:.0f}% of the body and fat is "
            f"{100 * f.fat_fraction:.1f}% of it (no abdominal fat compartment)"
        )
    if f.internal_air_fraction >= THORAX_AIR_FRACTION:
        return (
            f"a chest slice, not L3: air inside the body (lungs) covers "
            f"{100 * f.internal_air_fraction:.0f}% of its area (over {100 * THORAX_AIR_FRACTION:.0f}%)"
        )
    if f.contours >= 2:
        return (
            f"{f.contours} separate body contours (the second is {100 * f.second_contour_fraction:.0f}% "
            "of the largest): legs or a pelvis below the hips, not the L3 abdomen"
        )
    if f.fat_fraction < MIN_FAT_FRACTION:
        return (
            f"no fat compartment: fat (-190..-30 HU) is {100 * f.fat_fraction:.1f}% of the body "
            f"(under {100 * MIN_FAT_FRACTION:.0f}%): a phantom, an object or not a human abdomen"
        )
    return None


def level_warnings(f: AnatomyFeatures) -> list[str]:
    """Why the slice's level cannot be confirmed as L3 (empty when nothing speaks against it)."""
    warnings = []
    if not f.midline_bone:
        warnings.append("L3 not confirmed: no vertebra found near the midline")
    if f.lateral_bone_sides == 2:
        warnings.append(
            "L3 not confirmed: bone lateral to the spine on both sides (ribs above L3, or iliac wings below)"
        )
    return warnings


def check_anatomy(ct: CTSlice) -> list[str]:
    """The anatomy gate: raise for a slice that is not abdominal, return level warnings.

    Raises:
        IngestError: head, thorax, legs / low pelvis, or no fat compartment; the message names
            the feature and its value.
    """
    features = anatomy_features(ct)
    reason = _refusal(features)
    if reason is not None:
        raise IngestError(f"{ct.case_id}: {reason}")
    return level_warnings(features)
