#!/usr/bin/env bash
# One prepared GPU check (issue 12): the training step of every method and the authors' reference
# step in the same run (fp32, then bf16 autocast + channels_last, then torch.compile), and
# `lsmseg segment` seconds per slice on a 100-slice phantom cohort, on one CUDA device.
#
#   OUT=/tmp/gpu bash benchmarks/gpu_check.sh            # on a machine with a GPU and lsmseg's deps
#   DEVICE=cpu QUICK=1 OUT=/tmp/smoke bash benchmarks/gpu_check.sh   # a smoke test of the script
#
# Where lsmseg's dependencies are not installed (a bare GPU machine with torch only), wheels in
# .whl/ (monai, pytorch-ignite, pydicom, highdicom, pyjpegls, nibabel) are installed to
# /tmp/site first. Every result is written under $OUT as soon as it exists, in order of
# priority, so a run cut short still returns what it finished. Each step has its own time limit.
set -u
OUT=${OUT:-/tmp/lsmseg-gpu}
DEVICE=${DEVICE:-cuda}
QUICK=${QUICK:-0}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if [ -d .whl ] && ! $PY -c "import monai, ignite, highdicom" 2>/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || exit 1
    export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}

{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>/dev/null
    nproc
    $PY -c "import torch, monai; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'monai', monai.__version__)"
} >"$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"

if [ "$QUICK" = 1 ]; then
    SIZE=32 WIDTHS="4" BIG="4" STEPS=2 WARM=1 N=4 PEAK=64
else
    SIZE=128 WIDTHS="16 32" BIG="64" STEPS=20 WARM=5 N=100 PEAK=1024,2048,4096
fi
bench() {  # one `lsmseg bench` invocation, rows appended to bench_gpu.csv, log to bench_gpu.log
    timeout "$1" $PY -m lsmseg.cli.main bench --device "$DEVICE" --image-size "$SIZE" --batch-size 16 \
        --steps "$STEPS" --warmup "$WARM" --peak-sizes "$PEAK" --out "$OUT/bench_gpu.csv" --append "${@:2}" \
        2>&1 | tee -a "$OUT/bench_gpu.log"
}

# 1. the widths: fp32, then bf16 + channels_last (every method and the reference step)
for ngf in $WIDTHS; do
    bench 120 --ngf "$ngf"
    bench 120 --ngf "$ngf" --amp --channels-last
done
# 2. segment per slice, the model loaded once, the writers on the machine's cores
timeout 180 $PY benchmarks/segment_speed.py --device "$DEVICE" --n "$N" --settings 64:128 --batch-size 32 \
    --workers 8 --out "$OUT/segment_gpu.csv" 2>&1 | tee "$OUT/segment_gpu.log"
# 3. the paper's width, and torch.compile on and off (compilation is in the untimed warm-up)
for ngf in $BIG; do
    bench 120 --ngf "$ngf" --amp --channels-last
    bench 240 --ngf "$ngf" --amp --channels-last --compile --methods basic,lsm,reference
done
echo "done: $(date -u)" | tee -a "$OUT/machine.txt"
