#!/usr/bin/env bash
# Install everything m2f_mm needs into the current Python environment.
#
# Idempotent: each step checks first and does nothing when its part is already
# there, so a second run takes seconds. The slow part, compiling mmcv 2.1.0 with
# its ops (about 8 minutes on 2 cores), is cached as a wheel under
# ${M2F_MM_CACHE:-~/.cache/m2f_mm}, keyed by the torch build it was compiled for.
#
# Environment:
#   PYTHON        interpreter to install into (default: python3)
#   M2F_MM_CACHE  cache folder for the compiled mmcv wheel
#   MAX_JOBS      parallel compile jobs for mmcv (default: number of cores)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}
PIP=("$PY" -m pip --disable-pip-version-check)
CACHE=${M2F_MM_CACHE:-$HOME/.cache/m2f_mm}
MMCV_VERSION=2.1.0
TORCH_VERSION=2.13.0
T0=$SECONDS

say() { printf '[setup %4ds] %s\n' $((SECONDS - T0)) "$*"; }
# pip, quietly; pip's own failure still fails the script (pipefail)
quiet_pip() {
  "${PIP[@]}" install -q "$@" 2>&1 |
    { grep -v -e 'Running pip as the .root. user' -e "^WARNING: Location '.*' is ignored" || true; }
}

# 1. torch: keep whatever torch is there (a CUDA build on a GPU machine);
#    install the pinned CPU wheel only where there is none.
if "$PY" -c 'import torch' 2>/dev/null; then
  say "torch $("$PY" -c 'import torch; print(torch.__version__)') present"
else
  say "installing torch==$TORCH_VERSION"
  quiet_pip "torch==$TORCH_VERSION" "numpy==2.2.6"  # requirements/runtime.txt pins it too
fi
TORCH_TAG=$("$PY" -c 'import torch; print(torch.__version__)')

# 2. mmcv 2.1.0 with compiled ops (mmdet 3.3 / mmseg 1.2 need mmcv < 2.2, and
#    there is no prebuilt wheel for this torch).
mmcv_ok() {
  "$PY" - <<EOF 2>/dev/null
import mmcv, mmcv._ext  # noqa: F401  (_ext is the compiled extension)
from mmcv.ops import MultiScaleDeformableAttention  # noqa: F401
assert mmcv.__version__ == '$MMCV_VERSION', mmcv.__version__
EOF
}
if mmcv_ok; then
  say "mmcv $MMCV_VERSION with compiled ops present"
else
  WHEELS="$CACHE/wheels/torch-$TORCH_TAG"
  mkdir -p "$WHEELS"
  if ! ls "$WHEELS"/mmcv-$MMCV_VERSION-*.whl >/dev/null 2>&1; then
    say "building mmcv $MMCV_VERSION with ops from source (about 8 min on 2 cores)"
    quiet_pip -r "$REPO/requirements/build.txt"
    MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
      "${PIP[@]}" wheel -q --no-build-isolation --no-deps -w "$WHEELS.partial" \
      "mmcv==$MMCV_VERSION" 2>&1 | { grep -v "^WARNING: Location '.*' is ignored" || true; }
    # Publish the wheel only once it is whole.
    mv "$WHEELS.partial"/mmcv-$MMCV_VERSION-*.whl "$WHEELS"/ && rmdir "$WHEELS.partial"
  else
    say "reusing cached mmcv wheel from $WHEELS"
  fi
  quiet_pip "$WHEELS"/mmcv-$MMCV_VERSION-*.whl -r "$REPO/requirements/runtime.txt"
  mmcv_ok || { echo "mmcv $MMCV_VERSION installed but its compiled ops do not import" >&2; exit 1; }
  say "mmcv $MMCV_VERSION installed"
fi

# 3. The OpenMMLab stack and test tools. A cheap metadata check first, so a
#    second run does not even start the resolver.
reqs_ok() {
  "$PY" - "$@" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version, PackageNotFoundError
try:
    from packaging.requirements import Requirement
except ImportError:  # a bare environment: pip vendors packaging
    from pip._vendor.packaging.requirements import Requirement
for path in sys.argv[1:]:
    for line in open(path):
        line = line.split('#')[0].strip()
        if not line:
            continue
        req = Requirement(line)
        try:
            if not req.specifier.contains(version(req.name), prereleases=True):
                sys.exit(1)
        except PackageNotFoundError:
            sys.exit(1)
EOF
}
REQS=("$REPO/requirements/runtime.txt" "$REPO/requirements/tests.txt")
if reqs_ok "${REQS[@]}"; then
  say "runtime and test requirements present"
else
  say "installing runtime and test requirements"
  quiet_pip -r "${REQS[0]}" -r "${REQS[1]}"
fi

# 4. panopticapi for MMDet's CocoPanopticMetric. panopticapi-lite ships the
#    module, but its metadata pins numpy<2; its code runs on numpy 2
#    (tests/test_environment.py checks a PQ computation), so install it
#    without its dependency pins rather than downgrading numpy.
if "$PY" -c 'import panopticapi.evaluation' 2>/dev/null; then
  say "panopticapi present"
else
  say "installing panopticapi-lite (no deps: its numpy<2 pin is not needed)"
  quiet_pip --no-deps "panopticapi-lite==0.2.0"
fi

# 5. m2f_mm itself, editable, from this checkout.
HERE=$(cd / && "$PY" -c 'import m2f_mm, os; print(os.path.dirname(os.path.dirname(os.path.abspath(m2f_mm.__file__))))' 2>/dev/null || true)
if [ "$HERE" = "$REPO" ]; then
  say "m2f_mm (editable, $REPO) present"
else
  say "installing m2f_mm from $REPO (editable)"
  (cd "$REPO" && quiet_pip --no-deps --no-build-isolation -e .)
fi
say "environment ready"
