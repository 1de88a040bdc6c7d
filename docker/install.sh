#!/usr/bin/env bash
# Install PyTorch and lsmseg (non-editable) into a Python environment, then check the result.
#
# This is what docker/Dockerfile runs, and what CI runs into a throwaway virtual environment
# (tests/test_docker_install.py), so the image's install steps are tested without Docker.
#
# usage: docker/install.sh PYTHON TORCH SOURCE_DIR [BUNDLE_DIR]
#   PYTHON      interpreter of the target environment, e.g. /opt/venv/bin/python
#   TORCH       where the PyTorch wheel comes from:
#                 https://...  a PyTorch wheel index, e.g. https://download.pytorch.org/whl/cu128
#                 cpu          the CPU-only wheels (https://download.pytorch.org/whl/cpu)
#                 pip          pip's own configuration as it is (PyPI, mirrors, --find-links)
#   SOURCE_DIR  the lsmseg source tree (the folder holding pyproject.toml)
#   BUNDLE_DIR  optional: a trained bundle to check; it must load and segment two phantom slices
# environment:
#   TORCH_VERSION   PyTorch version to install (default 2.13.0)
#
# Checks after installing: lsmseg is imported from site-packages (not from SOURCE_DIR), the
# `lsmseg` command answers --help, and with BUNDLE_DIR the bundle's network and weights load and
# `lsmseg segment` measures a synthetic cohort.
set -euo pipefail

die() {
    echo "install.sh: error: $*" >&2
    exit 1
}

[[ $# -ge 3 && $# -le 4 ]] || die "usage: $0 PYTHON TORCH(https://...|cpu|pip) SOURCE_DIR [BUNDLE_DIR]"
PYTHON=$1
TORCH=$2
SOURCE=$(cd "$3" 2>/dev/null && pwd) || die "source folder $3 does not exist"
BUNDLE=${4:-}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}

[[ -f "$SOURCE/pyproject.toml" ]] || die "$SOURCE has no pyproject.toml: give the lsmseg source folder"
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 10), sys.version' 2>/dev/null ||
    die "$PYTHON is not a Python >= 3.10 interpreter"
if [[ -n "$BUNDLE" ]]; then
    BUNDLE=$(cd "$BUNDLE" 2>/dev/null && pwd) || die "bundle folder $4 does not exist"
    [[ -f "$BUNDLE/models/model.pt" ]] ||
        die "$BUNDLE/models/model.pt is missing: train the bundle first (python -m monai.bundle run --config_file $BUNDLE/configs/train.json)"
    [[ -f "$BUNDLE/models/model.json" ]] ||
        die "$BUNDLE/models/model.json is missing: the weights do not say which network they belong to (retrain the bundle, which writes it beside model.pt)"
fi

case "$TORCH" in
    http://* | https://* | file://*) torch_index=(--index-url "$TORCH") ;;
    cpu) torch_index=(--index-url https://download.pytorch.org/whl/cpu) ;;
    pip) torch_index=() ;;
    *) die "TORCH must be a wheel index URL, 'cpu' or 'pip', got '$TORCH'" ;;
esac

echo "install.sh: PyTorch $TORCH_VERSION from ${TORCH}"
"$PYTHON" -m pip install --no-input "${torch_index[@]}" "torch==$TORCH_VERSION"

# Build from a copy of what the package needs, so the source tree gets no build/ or egg-info.
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
cp "$SOURCE/pyproject.toml" "$SOURCE/README.md" "$build/"
[[ -f "$SOURCE/LICENSE" ]] && cp "$SOURCE/LICENSE" "$build/"
cp -R "$SOURCE/lsmseg" "$build/lsmseg"
find "$build" -name __pycache__ -type d -prune -exec rm -rf {} +
echo "install.sh: lsmseg from $SOURCE"
"$PYTHON" -m pip install --no-input "$build"

# --- checks, from an empty folder so no source tree can be imported by accident ---
mkdir "$build/check"
cd "$build/check"
scripts=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
"$PYTHON" - <<'EOF' || die "lsmseg is not installed as a package"
import pathlib, sys, sysconfig
import lsmseg, torch
location = pathlib.Path(lsmseg.__file__).resolve()
site = pathlib.Path(sysconfig.get_path("purelib")).resolve()
if not location.is_relative_to(site):
    sys.exit(f"lsmseg imports from {location.parent}, not from site-packages ({site})")
build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU only"
print(f"install.sh: lsmseg {lsmseg.__version__} at {location.parent}; torch {torch.__version__} ({build})")
EOF
"$scripts/lsmseg" --help >/dev/null || die "'lsmseg --help' failed"
"$scripts/lsmseg" segment --help >/dev/null || die "'lsmseg segment --help' failed"

if [[ -n "$BUNDLE" ]]; then
    "$PYTHON" - "$BUNDLE" <<'EOF' || die "the bundle $BUNDLE does not load"
import sys
from lsmseg.clinical import load_bundle
model = load_bundle(sys.argv[1], "cpu")
print(f"install.sh: bundle {model.label} loads (image {model.image_size} px, weights sha256 {model.weights_sha256[:12]})")
EOF
    "$scripts/lsmseg" phantom "$build/phantom" --n 2 >/dev/null
    if ! "$scripts/lsmseg" segment "$build/phantom/images" --out "$build/out" --bundle "$BUNDLE" \
        --patients "$build/phantom/patients.csv" --device cpu --no-progress >"$build/segment.log" 2>&1; then
        cat "$build/segment.log" >&2
        die "'lsmseg segment' on two phantom slices failed (its output is above)"
    fi
    echo "install.sh: lsmseg segment measured two phantom slices with the bundle"
fi
echo "install.sh: done"
