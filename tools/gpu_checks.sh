#!/usr/bin/env bash
# The GPU checks behind the README's GPU section, in one go, on a machine
# with a CUDA GPU and the project installed (tools/setup_env.sh with a CUDA
# torch builds mmcv's CUDA kernels). Logs go to OUT (default
# work_dirs/gpu_checks), one file per step, and a summary of exit codes and
# times in OUT/summary.txt:
#
#   bash tools/gpu_checks.sh [OUT]
#
# Two parts, in this order (PARTS selects them; default "checks bench"):
#   checks  `pytest -m cuda`, the quickstart twice (work_dirs/gpu_quickstart
#           and gpu_quickstart-repeat; tools/compare_runs.py then says
#           whether they repeat bit for bit) and the CPU suite with the GPU
#           visible, side by side (none is timed)
#   bench   the benchmark alone on the idle GPU: R-50 COCO panoptic, 1024²,
#           train batch 2, inference batch 1, ours vs MMDetection vs Hugging
#           Face, each with its config's optimizer. The README's table
#           first (fp32, then bf16, with memory), then fp16, the op and
#           kernel-launch counts (--count-ops), fp32 with one plain AdamW for
#           all, the pixel decoder's with_cp against MMDet, and the counts
#           with the plain AdamW.
#
# Environment:
#   BUDGET         seconds for the whole script (default 0: no limit). With
#                  a budget each step's time limit is cut to what is left,
#                  and a step that would get under MIN_STEP seconds (default
#                  60) is skipped and named in the summary: on a machine lent
#                  for minutes the most wanted figures come first.
#   STEP_TIMEOUT   seconds per step (default 600); SUITE_TIMEOUT for the suite
#   SUITE_JOBS     pytest-xdist workers for the suite (default 0: one
#                  process). The CPU suite passes under `-n 2` (2-core VM:
#                  421 s against 547 s in one process); on a many-core GPU
#                  machine more workers finish it well before the benchmark
#                  waits on it. Used only where pytest-xdist imports.
#   SUITE_ARGS     extra pytest arguments for the suite (e.g. a --deselect for
#                  a test that the machine's install cannot pass)
#   QUICKSTART_REPEAT  0: run the quickstart once, without the comparison
#   BENCH_REPEATS  timed rounds per benchmark (default 5)
#   BENCH_TF32     set: also fp32 with TF32 on
#   BENCH_COMPILE  set: also torch.compile against eager (minutes: last)
#   DRY_RUN        set: print each step and its time limit, run nothing
set -uo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:-$REPO/work_dirs/gpu_checks}
PY=${PYTHON:-python3}
JOBS=${SUITE_JOBS:-0}
LIMIT=${STEP_TIMEOUT:-600}
BUDGET=${BUDGET:-0}
MIN_STEP=${MIN_STEP:-60}
PARTS=" ${PARTS:-checks bench} "
mkdir -p "$OUT"
cd "$REPO"
export PYTHONUNBUFFERED=1
T0=$SECONDS

note() { echo "[gpu_checks $((SECONDS - T0))s] $*" | tee -a "$OUT/summary.txt"; }
# step NAME CMD...: run CMD with a time limit (STEP_LIMIT, else
# STEP_TIMEOUT, cut to what is left of BUDGET), its output appended to
# OUT/NAME.log; skipped when the budget leaves under MIN_STEP seconds
step() {
  local name=$1; shift
  local limit=${STEP_LIMIT:-$LIMIT}
  if [ "$BUDGET" -gt 0 ]; then
    local left=$((BUDGET - (SECONDS - T0) - 5))
    if [ "$left" -lt "$MIN_STEP" ]; then
      note "$name: skipped, ${left} s of the budget left: $*"
      return 124
    fi
    [ "$left" -lt "$limit" ] && limit=$left
  fi
  if [ -n "${DRY_RUN:-}" ]; then
    note "$name: would run with a ${limit} s limit: $*"
    return 0
  fi
  local start=$SECONDS
  echo "\$ $*" >>"$OUT/$name.log"
  timeout "$limit" "$@" >>"$OUT/$name.log" 2>&1
  local rc=$?
  note "$name: exit $rc in $((SECONDS - start)) s (limit ${limit} s)"
  return $rc
}

if [ -z "${DRY_RUN:-}" ]; then
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
fi
note "parts:${PARTS}budget ${BUDGET} s (0: none)"

if [[ $PARTS == *" checks "* ]]; then
  XDIST=()
  if [ "$JOBS" -gt 0 ] && "$PY" -c 'import xdist' 2>/dev/null; then XDIST=(-n "$JOBS"); fi
  # correctness, side by side: none of these is timed
  # shellcheck disable=SC2086  # SUITE_ARGS is a list of words
  OMP_NUM_THREADS=4 STEP_LIMIT=${SUITE_TIMEOUT:-$LIMIT} step suite "$PY" -m pytest -v \
    -p no:cacheprovider "${XDIST[@]}" -m 'not slow and not cuda' ${SUITE_ARGS:-} &
  SUITE=$!
  # the toy data first: the two quickstarts would both make it at once
  step toy_data "$PY" tools/make_toy_dataset.py --out data/toy
  # the quickstart twice, side by side: do its results repeat bit for bit?
  QS="$REPO/work_dirs/gpu_quickstart"
  step quickstart "$PY" tools/quickstart.py --work-dir "$QS" &
  QUICK=$!
  REPEAT=
  if [ "${QUICKSTART_REPEAT:-1}" != 0 ]; then
    step quickstart_repeat "$PY" tools/quickstart.py --work-dir "$QS-repeat" &
    REPEAT=$!
  fi
  step cuda_tests "$PY" -m pytest -m cuda -v -s -p no:cacheprovider -rA tests/test_cuda.py
  wait $QUICK $REPEAT
  [ -n "$REPEAT" ] && step compare_quickstarts "$PY" tools/compare_runs.py "$QS" "$QS-repeat"
  wait $SUITE
fi

if [[ $PARTS == *" bench "* ]]; then
  # speed, alone on the GPU, the README's table first: each implementation
  # with the optimizer its config trains with (ours: merged parameter
  # groups and the fused AdamW; MMDet: one group per parameter)
  BENCH=(--device cuda --size 1024 --batch 2 --infer-batch 1
         --repeats "${BENCH_REPEATS:-5}" --optimizer config)
  step bench "$PY" tools/benchmark.py "${BENCH[@]}"
  step bench "$PY" tools/benchmark.py "${BENCH[@]}" --amp bf16
  step bench "$PY" tools/benchmark.py "${BENCH[@]}" --amp fp16 --no-memory
  # aten ops, CUDA kernel launches and host synchronisations of one train
  # step per implementation
  COUNT=(--device cuda --size 1024 --batch 2 --count-ops)
  step count_ops "$PY" tools/benchmark.py "${COUNT[@]}" --optimizer config
  # one plain AdamW for all, as ../shared/gpu/README.md measured
  step bench "$PY" tools/benchmark.py "${BENCH[@]}" --optimizer plain --no-memory
  # ours with the pixel decoder's encoder recomputed in backward (with_cp):
  # the memory it saves and the time it costs, against MMDet
  step bench "$PY" tools/benchmark.py "${BENCH[@]}" --impls m2f_mm,mmdet \
    --cfg-options panoptic_head.pixel_decoder.with_cp=True
  step count_ops "$PY" tools/benchmark.py "${COUNT[@]}" --optimizer plain
  [ -n "${BENCH_TF32:-}" ] && step bench "$PY" tools/benchmark.py "${BENCH[@]}" --tf32 on --no-memory
  # torch.compile against eager, ours only (compiling takes minutes: last)
  [ -n "${BENCH_COMPILE:-}" ] && step bench "$PY" tools/benchmark.py "${BENCH[@]}" --compile --compile-train
fi
note "done"
