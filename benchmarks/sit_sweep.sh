#!/usr/bin/env bash
# The paper's SIT comparison at the cpu preset: basic, SOP, IODA and LSM at 100, 20 and 5 %
# paired data, 2 seeds (24 runs) -> benchmarks/results/sit_sweep/{results.csv,sweep.png,summary.md}.
# Resumable: run it again after an interruption. The log records the machine load before and after,
# because timings on a shared machine depend on it.
#   usage: benchmarks/sit_sweep.sh [extra lsmseg sweep options, e.g. --jobs 1]
set -euo pipefail
cd "$(dirname "$0")/.."
out=benchmarks/results/sit_sweep
mkdir -p "$out"
log="$out/sweep.log"
{
  echo "start: $(date -Is)  $(uptime)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
} >> "$log"
start=$(date +%s)
status=0
lsmseg sweep --bundle bundles/lsm_sit --methods basic,sop,ioda,lsm --proportions 1,0.2,0.05 \
  --seeds 2 --preset cpu --out "$out" "$@" 2>&1 | tee -a "$log" || status=$?
echo "end: $(date -Is)  $(uptime)  wall $(( $(date +%s) - start )) s  exit $status" >> "$log"
exit "$status"
