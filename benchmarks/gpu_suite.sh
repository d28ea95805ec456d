#!/usr/bin/env bash
# The GPU measurements of issue 13 in one script, under 8 minutes on one H100/H200:
#   1. benchmarks/gpu_throughput.py: images/s, model-FLOP utilisation and peak memory of vit_base/16 at 224 in bf16,
#      batch 64, 128 and 256, without and with torch.compile, through the bundle's AFiRePretrainer with every handler
#      of train.json; the FLOP per image counted on the model (FlopCounterMode); host-device syncs per iteration;
#   2. benchmarks/step_overhead.py: the full AFiRe step against the floor step (bf16, vit_base, batch 64).
# Each writes its markdown table into the output folder as it goes (a run cut short keeps what it measured), with
# environment.txt (GPU, driver, versions) and suite.log (everything printed).
#
# Usage (from anywhere):
#   benchmarks/gpu_suite.sh [--out DIR]      # on the GPU machine; DIR defaults to benchmarks/results/gpu_suite
#   benchmarks/gpu_suite.sh --dry-run        # the same scripts on the CPU with a tiny model (a few minutes), to check
#                                            # them without a GPU; DIR defaults to ${TMPDIR:-/tmp}/gpu_suite_dry
# Needs monai and pytorch-ignite. A machine without them and without network access can install them from wheels put
# in .wheels/ at the repository root beforehand (`pip download --no-deps -d .wheels monai==1.6.1 pytorch-ignite==0.5.5`).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
PYTHON="${PYTHON:-python3}"
DRY=0
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY=1 ;;
        --out) OUT="$2"; shift ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "gpu_suite.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if [ -z "$OUT" ]; then
    if [ "$DRY" = 1 ]; then OUT="${TMPDIR:-/tmp}/gpu_suite_dry"; else OUT="benchmarks/results/gpu_suite"; fi
fi
mkdir -p "$OUT"
LOG="$OUT/suite.log"
: > "$LOG"
exec > >(tee -a "$LOG") 2>&1
START=$(date +%s)

if ! "$PYTHON" -c "import monai, ignite" 2>/dev/null; then
    if [ -d .wheels ]; then
        echo "installing monai and pytorch-ignite from .wheels/ (offline)"
        "$PYTHON" -m pip install --quiet --no-index --no-deps --find-links .wheels monai pytorch-ignite
    else
        echo "gpu_suite.sh: monai and pytorch-ignite are missing; see the header of this script" >&2
        exit 2
    fi
fi

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader
    fi
    "$PYTHON" -c "import torch, monai, ignite; print('torch', torch.__version__, 'cuda', torch.version.cuda, '| monai', monai.__version__, '| ignite', ignite.__version__)"
    echo "dry run: $DRY"
} | tee "$OUT/environment.txt"

if [ "$DRY" = 1 ]; then
    "$PYTHON" benchmarks/gpu_throughput.py --dry-run --out "$OUT/gpu_throughput.md"
    "$PYTHON" benchmarks/step_overhead.py --device cpu --quick --steps 2 --warmup 1 --repeats 1 --loop-steps 1 \
        --out "$OUT/step_overhead.md"
else
    # about 5 minutes: the three compiled configurations take ~1-1.5 min each to compile; none starts after 330 s
    "$PYTHON" benchmarks/gpu_throughput.py --batches 64 128 256 --steps 30 --warmup 8 --budget-s 330 \
        --out "$OUT/gpu_throughput.md"
    "$PYTHON" benchmarks/step_overhead.py --device cuda --amp --archs vit_base --batch 64 --steps 15 --warmup 5 \
        --repeats 3 --loop-steps 1 --out "$OUT/step_overhead.md"
fi
echo "gpu_suite.sh: done in $(( $(date +%s) - START )) s; results in $OUT"
