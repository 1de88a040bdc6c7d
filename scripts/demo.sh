#!/usr/bin/env bash
# The main job on the embedded default, at CPU smoke size: train LSM on the synthetic image
# translation task, evaluate it on the test split and print the metrics.
set -euo pipefail
out=${1:-demo_out}
mkdir -p "$out"
bundle=bundles/lsm_sit
smoke=(--max_epochs 2 --ngf 8 --ckpt_dir "$out/lsm_sit/models" --output_dir "$out/lsm_sit/eval")
python -m monai.bundle run training --config_file "$bundle/configs/train.json" "${smoke[@]}"
python -m monai.bundle run --config_file "['$bundle/configs/train.json','$bundle/configs/evaluate.json']" "${smoke[@]}"
echo "SIT test split:"
cat "$out/lsm_sit/eval/metrics.json"
