"""Plot a CSV of ``lsmseg bench``: samples/s per method and width, with the speed-up over the
authors' step (``reference``) measured in the same run written above each bar.

    python benchmarks/plot_bench.py benchmarks/results/bench_reference.csv
    # -> benchmarks/results/bench_reference.png
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after the backend choice


def plot(csv_path: Path, png_path: Path) -> Path:
    """Grouped bars: one group per ngf, one bar per method (samples/s), label = vs_reference."""
    with open(csv_path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    widths = sorted({int(r["ngf"]) for r in rows})
    methods = list(dict.fromkeys(r["method"] for r in rows))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    bar = 0.8 / len(methods)
    for i, method in enumerate(methods):
        for j, ngf in enumerate(widths):
            row = next((r for r in rows if r["method"] == method and int(r["ngf"]) == ngf), None)
            if row is None:
                continue
            x, y = j + (i - (len(methods) - 1) / 2) * bar, float(row["samples_per_s"])
            ax.bar(x, y, bar, color=f"C{i}", label=method if j == 0 else None)
            ratio = row.get("vs_reference") or ""
            ax.text(x, y, f"{float(ratio):.1f}x" if ratio else "", ha="center", va="bottom", fontsize=8)
    first = rows[0]
    ax.set_xticks(range(len(widths)), [f"ngf {w}" for w in widths])
    ax.set_ylabel("training samples / s")
    ax.set_title(
        f"lsmseg bench: batch {first['batch_size']}, {first['image_size']} px, "
        f"{first['torch_threads']} threads, {first['device_name']}\n"
        "label: speed-up over the authors' step ('reference') in the same run",
        fontsize=9,
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)
    return png_path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("csv", type=Path, help="a CSV written by lsmseg bench")
    parser.add_argument("--out", type=Path, help="PNG to write (default: the CSV's name with .png)")
    args = parser.parse_args()
    print(plot(args.csv, args.out or args.csv.with_suffix(".png")))


if __name__ == "__main__":
    main()
