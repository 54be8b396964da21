#!/usr/bin/env bash
# The device command of the GPU check (docs/gpu.md): on a lent GPU machine, in the repository root,
# with .whl/ carried (benchmarks/gpu_wheels.sh fills it here, where pip reaches a registry):
#
#   bash benchmarks/run_gpu.sh [bench_gpu.py options]
#
# 1. installs the carried wheels into /tmp/site/{need,match,hf} (pip, no index, no dependencies),
#    and depthlab's entry points (from pyproject.toml) into /tmp/site/self;
# 2. checks that depthlab's imports work with them; a group of version-matching wheels (hf, then
#    match) that breaks them is left out, and the machine's own versions serve instead (said so);
# 3. runs benchmarks/bench_gpu.py under `timeout` (BENCH_TIMEOUT, default 330 s) with PYTHONPATH =
#    this checkout + the groups, writing $OUT/bench_gpu.json, $OUT/bench_gpu.md (the table),
#    $OUT/bench_gpu.log (everything printed) and $OUT/environment.txt (nvidia-smi, versions).
#    A run stopped by the timeout still leaves its table: bench_gpu.py rewrites the JSON after every
#    row, and --from_json prints the table of what finished.
set -uo pipefail

start=$(date +%s)
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/bench_gpu_out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
SITE=${SITE:-/tmp/site}
log() { echo "run_gpu.sh: $*" | tee -a "$OUT/environment.txt"; }

{ nvidia-smi 2>&1 || echo "no nvidia-smi"; "$PY" -V; } >"$OUT/environment.txt"

groups=()
for group in need match hf; do
    wheels=(.whl/"$group"/*.whl)
    [ -e "${wheels[0]}" ] || { log "no wheels in .whl/$group (run benchmarks/gpu_wheels.sh here first, carry .whl)"; continue; }
    if "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE/$group" \
        "${wheels[@]}" >>"$OUT/environment.txt" 2>&1; then
        groups+=("$group")
    else
        log "pip could not install .whl/$group: left out (see above)"
    fi
done

# depthlab's own entry points (its networks and losses by name: `unet`, `hf`, `silog`, ...): the
# registry finds them in an installed distribution's metadata, which an editable install writes and
# PYTHONPATH alone does not. Written here from pyproject.toml, as a dist-info folder beside the checkout.
"$PY" - "$PWD" "$SITE/self" <<'PYTHON' || log "could not write depthlab's entry points: names such as unet will be unknown"
import sys
import tomllib
from pathlib import Path

root, site = Path(sys.argv[1]), Path(sys.argv[2])
project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
info = site / f"{project['name']}-{project['version']}.dist-info"
info.mkdir(parents=True, exist_ok=True)
(info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
groups = {**project.get("entry-points", {}), "console_scripts": project.get("scripts", {})}
(info / "entry_points.txt").write_text("".join(
    f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in points.items()) + "\n"
    for group, points in groups.items()))
PYTHON

pythonpath() {  # this checkout first (depthlab from it), its entry points, then the groups named: all ahead of the image's site-packages
    local path=$PWD:$SITE/self g
    for g in "$@"; do path=$path:$SITE/$g; done
    echo "$path${PYTHONPATH:+:$PYTHONPATH}"
}

check='
import importlib
for name in ("depthlab.module", "depthlab.data", "depthlab.callbacks", "albumentations", "lightning", "timm",
             "torchmetrics", "transformers", "cv2"):
    importlib.import_module(name)
from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation  # the hf network of bench_gpu
from depthlab import losses, models
assert {"unet", "hf"} <= set(models.available()) and "silog" in losses.REGISTRY.available(), "entry points missing"
import torch, lightning, timm, torchmetrics, transformers, albumentations, cv2, numpy
print("versions:", ", ".join(f"{m.__name__} {m.__version__}" for m in
      (torch, lightning, timm, torchmetrics, transformers, albumentations, cv2, numpy)),
      "| cuda", torch.version.cuda, "| devices", torch.cuda.device_count())
'
use=("${groups[@]}")
while true; do
    if PYTHONPATH=$(pythonpath "${use[@]}") "$PY" -c "$check" >>"$OUT/environment.txt" 2>&1; then
        break
    fi
    if [ ${#use[@]} -le 1 ] || [ "${use[-1]}" = need ]; then
        log "depthlab does not import with the groups [${use[*]}] (see environment.txt); running anyway"
        break
    fi
    log "imports fail with .whl/${use[-1]} (see above): left out, the machine's own versions serve instead"
    unset 'use[-1]'
done
export PYTHONPATH
PYTHONPATH=$(pythonpath "${use[@]}")
log "wheel groups in use: [${use[*]}]; set up in $(($(date +%s) - start)) s"
grep '^versions:' "$OUT/environment.txt" | tail -n 1

export PYTHONUNBUFFERED=1 NO_ALBUMENTATIONS_UPDATE=1
timeout "${BENCH_TIMEOUT:-330}" "$PY" benchmarks/bench_gpu.py --json "$OUT/bench_gpu.json" --table "$OUT/bench_gpu.md" \
    "$@" 2>&1 | tee "$OUT/bench_gpu.log"
rc=${PIPESTATUS[0]}
if [ "$rc" != 0 ] && [ -f "$OUT/bench_gpu.json" ]; then
    echo "run_gpu.sh: bench_gpu.py exited $rc; the table of the rows that finished:"
    "$PY" benchmarks/bench_gpu.py --from_json "$OUT/bench_gpu.json" --table "$OUT/bench_gpu.md"
fi
echo "run_gpu.sh: done in $(($(date +%s) - start)) s (bench_gpu.py exit status $rc); files in $OUT: $(ls "$OUT" | tr '\n' ' ')"
exit "$rc"
