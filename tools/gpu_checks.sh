#!/usr/bin/env bash
# The GPU checks behind the README's GPU section, in one go, on a machine
# with a CUDA GPU and the project installed (tools/setup_env.sh with a CUDA
# torch builds mmcv's CUDA kernels). Logs go to OUT (default
# work_dirs/gpu_checks), one file per step, and a summary of exit codes:
#
#   bash tools/gpu_checks.sh [OUT]
#
# Steps: `pytest -m cuda`, the CPU suite with the GPU visible and the
# quickstart (work_dirs/gpu_quickstart), side by side (none of them is
# timed), then the benchmark alone
# on the idle GPU: R-50 COCO panoptic, 1024², train batch 2, inference
# batch 1, ours vs MMDetection vs Hugging Face, in fp32, fp16 and bf16,
# each with its config's optimizer (and fp32 with one plain AdamW for all),
# and fp32 with the pixel decoder's with_cp against MMDet.
# Environment: SUITE_JOBS (pytest-xdist workers for the suite; default 0,
# no xdist: the suite has not been checked under it), STEP_TIMEOUT (seconds
# per step, default 600), SUITE_TIMEOUT (for the suite alone), BENCH_REPEATS
# (default 5), BENCH_TF32 (set: also fp32 with TF32 on), BENCH_COMPILE (set:
# also torch.compile against eager, train step and inference). After the
# fp32 timings: aten ops, kernel launches and host synchronisations per train
# step (--count-ops), with each config's optimizer and with one plain AdamW.
set -uo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:-$REPO/work_dirs/gpu_checks}
PY=${PYTHON:-python3}
JOBS=${SUITE_JOBS:-0}
LIMIT=${STEP_TIMEOUT:-600}
mkdir -p "$OUT"
cd "$REPO"
export PYTHONUNBUFFERED=1
T0=$SECONDS

note() { echo "[gpu_checks $((SECONDS - T0))s] $*" | tee -a "$OUT/summary.txt"; }
# step NAME CMD...: run CMD with a time limit, its output appended to
# OUT/NAME.log
step() {
  local name=$1; shift
  local start=$SECONDS
  echo "\$ $*" >>"$OUT/$name.log"
  timeout "${STEP_LIMIT:-$LIMIT}" "$@" >>"$OUT/$name.log" 2>&1
  local rc=$?
  note "$name: exit $rc in $((SECONDS - start)) s"
  return $rc
}

"$PY" - >"$OUT/env.txt" 2>&1 <<'PYEOF'
import torch, mmcv, mmdet, mmengine
print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'GPU',
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
print('mmcv', mmcv.__version__, 'mmdet', mmdet.__version__, 'mmengine', mmengine.__version__)
print('TF32 defaults: matmul', torch.backends.cuda.matmul.allow_tf32,
      'cudnn', torch.backends.cudnn.allow_tf32)
PYEOF
cat "$OUT/env.txt"
"$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' ||
  { note 'no CUDA GPU visible: nothing to check'; exit 1; }

XDIST=()
if [ "$JOBS" -gt 0 ] && "$PY" -c 'import xdist' 2>/dev/null; then XDIST=(-n "$JOBS"); fi
# correctness, side by side: none of these is timed
OMP_NUM_THREADS=4 STEP_LIMIT=${SUITE_TIMEOUT:-$LIMIT} step suite "$PY" -m pytest -v -p no:cacheprovider "${XDIST[@]}" -m 'not slow and not cuda' &
SUITE=$!
step quickstart "$PY" tools/quickstart.py --work-dir "$REPO/work_dirs/gpu_quickstart" &
QUICK=$!
step cuda_tests "$PY" -m pytest -m cuda -v -s -p no:cacheprovider -rA tests/test_cuda.py
wait $SUITE $QUICK

# speed, alone on the GPU: fp32, bf16, fp16 (and fp32 with TF32 on when
# BENCH_TF32 is set), each with the optimizer its config trains with (ours:
# merged parameter groups; MMDet: one group per parameter); fp32 also with
# one plain AdamW for all, as ../shared/gpu/README.md measured
BENCH=(--device cuda --size 1024 --batch 2 --infer-batch 1 --repeats "${BENCH_REPEATS:-5}")
step bench "$PY" tools/benchmark.py "${BENCH[@]}" --optimizer plain --no-memory
BENCH+=(--optimizer config)
step bench "$PY" tools/benchmark.py "${BENCH[@]}"
# aten ops, CUDA kernel launches and host synchronisations of one train step
# per implementation, with each config's optimizer and with the plain one
step count_ops "$PY" tools/benchmark.py --device cuda --size 1024 --batch 2 --count-ops --optimizer config
step count_ops "$PY" tools/benchmark.py --device cuda --size 1024 --batch 2 --count-ops --optimizer plain
step bench "$PY" tools/benchmark.py "${BENCH[@]}" --amp bf16
# ours with the pixel decoder's encoder recomputed in backward (with_cp):
# the memory it saves and the time it costs, against MMDet
step bench "$PY" tools/benchmark.py "${BENCH[@]}" --impls m2f_mm,mmdet \
  --cfg-options panoptic_head.pixel_decoder.with_cp=True
step bench "$PY" tools/benchmark.py "${BENCH[@]}" --amp fp16 --no-memory
[ -n "${BENCH_TF32:-}" ] && step bench "$PY" tools/benchmark.py "${BENCH[@]}" --tf32 on --no-memory
# torch.compile against eager, ours only (compiling takes minutes: last)
[ -n "${BENCH_COMPILE:-}" ] && step bench "$PY" tools/benchmark.py "${BENCH[@]}" --compile --compile-train
note "done"
