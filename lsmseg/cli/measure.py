"""``lsmseg measure IMAGE... --masks DIR --out DIR``: re-measure from corrected masks.

A thin shell over :func:`lsmseg.clinical.measure.measure_cohort`; the options, outputs and
summary are those of ``lsmseg segment`` (:mod:`lsmseg.cli.segment`), without the network.
"""

from __future__ import annotations

import argparse

from lsmseg.cli.args import DEFAULT_CUTOFFS, add_measurement_options, command
from lsmseg.cli.segment import format_summary

EPILOG = """\
masks (in --masks DIR), matched to each image:
  <case_id>.nii.gz or <case_id>/mask.nii.gz   NIfTI on the image's grid (segment's cases/ folder
                                              works as it is; checked: shape, spacing, position);
                                              a multi-slice labelmap of the series (3D Slicer)
                                              gives the slice that lies on the image
  any DICOM SEG                               matched by the SeriesInstanceUID it references
  labels: 0 background, 1 SAT, 2 VAT, 3 muscle, 4 IMAT (IMAT counts as muscle compartment);
  edit mask.nii.gz in 3D Slicer or ITK-SNAP, save it under the same name, then run measure.

outputs: as lsmseg segment (results.csv, results.json, cases/<case_id>/...), model column
  "lsmseg-measure", mask_source column naming the mask used.

training: corrected cases are paired data for lsm_sss: copy the image to
  <dataset>/images/<case_id>.dcm|.nii.gz and cases/<case_id>/mask_model.nii.gz (or your
  corrected mask with label 4 set to 3) to <dataset>/masks/<case_id>.nii.gz.

example:
  lsmseg segment scans/ --out run1/
  (correct run1/cases/<case_id>/mask.nii.gz in 3D Slicer)
  lsmseg measure scans/ --masks run1/cases --out run2/
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = command(
        sub,
        "measure",
        help="re-measure L3 slices from corrected masks (NIfTI or DICOM SEG)",
        description="Measure areas, muscle HU, SMI and sarcopenia from given masks, with segment's outputs.",
        epilog=EPILOG,
    )
    p.add_argument("inputs", nargs="+", metavar="IMAGE", help="DICOM files or folders, NIfTI files")
    p.add_argument("--masks", required=True, metavar="DIR", help="folder of corrected masks")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if needed)")
    add_measurement_options(
        p,
        vat_hu_help="visceral fat HU range (default -150,-50)",
        cutoffs_help=f"sarcopenia cut-off sets, or 'all' (default {DEFAULT_CUTOFFS})",
        refine_help="no HU ranges (IMAT not measured)",
    )


def run(args: argparse.Namespace) -> int:
    from lsmseg.clinical.measure import measure_cohort

    report = measure_cohort(
        args.inputs,
        args.masks,
        args.out,
        patients_csv=args.patients,
        vat_hu=args.vat_hu,
        cutoffs=args.cutoffs,
        refine=args.refine,
    )
    print(format_summary(report))
    return report.exit_status
