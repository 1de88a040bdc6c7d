#!/usr/bin/env bash
# The main job on the embedded default, at CPU smoke size: the whole clinical path.
#   1. generate a synthetic L3 cohort (DICOM slices, masks, patients.csv, truth.csv)
#   2. train the lsm_sss bundle on it (a copy of the bundle, so the repository stays clean)
#   3. segment the cohort with the trained bundle and print the readout table
# Paper settings need a GPU; see README.md.
set -euo pipefail
out=${1:-demo_out}
epochs=${DEMO_EPOCHS:-30}  # ~2-3 min on 2 CPU cores; the model clears segment's quality floor (validation mIoU 0.5)
mkdir -p "$out"

echo "== 1/3 synthetic L3 cohort"
[ -f "$out/cohort/truth.csv" ] || lsmseg phantom "$out/cohort" --n 40 --format dicom --seed 0

echo "== 2/3 train lsm_sss at smoke size (ngf 8, 64 px, $epochs epochs) on the cohort"
# A copy of the bundle runs where it lies; training records the network it used in
# models/model.json, which segmentation reads: nothing in the copy is edited.
rm -rf "$out/lsm_sss" && cp -r bundles/lsm_sss "$out/lsm_sss" && rm -rf "$out/lsm_sss/models" "$out/lsm_sss/eval"
python -m monai.bundle run training --config_file "$out/lsm_sss/configs/train.json" \
  --dataset_dir "$out/cohort" --max_epochs "$epochs" --ngf 8 --ndf 8 --image_size 64 \
  --batch_size 8 --learning_rate 0.002 --patience 10

echo "== 3/3 segment the cohort and measure"
status=0
lsmseg segment "$out/cohort/images" --out "$out/segment" --bundle "$out/lsm_sss" \
  --patients "$out/cohort/patients.csv" --no-progress || status=$?
echo "results: $out/segment/results.csv (truth: $out/cohort/truth.csv)"
exit $status
