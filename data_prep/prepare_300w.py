"""Preprocess a 300-W download into the arrays the landmark experiment trains on.

    python data_prep/prepare_300w.py --src <300W root> --out <dir>

``<300W root>`` holds ``01_Indoor`` and ``02_Outdoor`` (directly or one folder down). Writes
``<dir>/images.npy`` (N, 3, 64, 64) float32 in [0, 1], ``<dir>/landmarks.npy`` (N, 136) float32 in
[0, 1] (interleaved x, y, as fractions of the square face crop) and ``<dir>/ids.txt`` (one
``indoor_001``-style id per row), each file written atomically. A face whose image or ``.pts``
cannot be read is skipped and named.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Preprocess a 300-W download into 64x64 face crops and landmarks."
    )
    parser.add_argument("--src", type=Path, required=True, help="300-W root with 01_Indoor/ and 02_Outdoor/")
    parser.add_argument(
        "--out", type=Path, required=True, help="output folder for images.npy, landmarks.npy, ids.txt"
    )
    parser.add_argument("--size", type=int, default=64, help="side of the face crop in pixels (default 64)")
    args = parser.parse_args(argv)

    import numpy as np
    from skimage.io import imread

    from lsmseg.data.w300 import find_300w_pairs, preprocess_face, read_pts
    from lsmseg.io.atomic import atomic_write, write_text_atomic

    if not args.src.is_dir():
        print(f"error: --src {args.src} is not a folder", file=sys.stderr)
        return 2
    pairs = find_300w_pairs(args.src)
    if not pairs:
        print(
            f"error: no 300-W faces under {args.src}: expected 01_Indoor/indoor_XXX.png with indoor_XXX.pts "
            "(and 02_Outdoor/outdoor_XXX...), directly or one folder down",
            file=sys.stderr,
        )
        return 2
    images, landmarks, ids = [], [], []
    for image_path, pts_path in pairs:
        try:
            image, points = preprocess_face(imread(image_path), read_pts(pts_path), size=args.size)
        except (OSError, ValueError) as err:
            print(f"skipped {image_path.stem}: {err}", file=sys.stderr)
            continue
        images.append(image)
        landmarks.append(points)
        ids.append(image_path.stem)
    if not ids:
        print("error: every face failed to load; nothing written", file=sys.stderr)
        return 1
    # Each file all-or-nothing, so a rerun after an interruption never reads a truncated array.
    for name, rows in (("images.npy", images), ("landmarks.npy", landmarks)):
        with atomic_write(args.out / name) as tmp:
            np.save(tmp, np.stack(rows))
    write_text_atomic(args.out / "ids.txt", "\n".join(ids) + "\n")
    print(f"{len(ids)} faces ({len(pairs) - len(ids)} skipped) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
