#!/usr/bin/env bash
# Idempotent environment set-up for mmdet-maskdino.
#
# Creates a virtualenv (default: ./.venv, override with MASKDINO_VENV) holding torch, mmcv 2.1.0 WITH
# compiled ops, mmengine 0.10.x, mmdet 3.3.0, panopticapi, openmim and this package in editable mode.
# A second run only checks what is there and returns in seconds.
#
# Environment knobs:
#   MASKDINO_VENV    virtualenv folder (default .venv in the repository root)
#   TORCH_SPEC       pip requirement for torch (default torch==2.13.0, a CPU build on the CI machines)
#   TORCH_INDEX_URL  extra index for torch, e.g. https://download.pytorch.org/whl/cpu on a laptop
#   MMCV_WHEELS      a folder of prebuilt mmcv wheels (default ../shared/wheels when present)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${MASKDINO_VENV:-$repo/.venv}"
torch_spec="${TORCH_SPEC:-torch==2.13.0}"
wheels="${MMCV_WHEELS:-$repo/../shared/wheels}"
stamp="$venv/.maskdino-setup-ok"
python_bin="${PYTHON:-python3.11}"
command -v "$python_bin" >/dev/null 2>&1 || python_bin=python3

log() { printf '[setup_env] %s\n' "$*" >&2; }

if [ ! -x "$venv/bin/python" ]; then
  log "creating virtualenv $venv with $($python_bin --version)"
  "$python_bin" -m venv "$venv"
fi
py="$venv/bin/python"
pip() { "$py" -m pip --disable-pip-version-check "$@"; }

# Fast path: everything was installed by a previous run and still imports.
if [ -f "$stamp" ] && "$py" - <<'PY' 2>/dev/null
import mmcv, mmdet, mmengine, torch, pkg_resources  # noqa: F401
from mmcv.ops import MultiScaleDeformableAttention  # noqa: F401
import mmdet_maskdino  # noqa: F401
import onnx, onnxruntime  # noqa: F401  (the deploy extra)
PY
then
  log "environment $venv is ready (delete $stamp to force a re-install)"
  exit 0
fi

# setuptools: >=77 for torch 2.13, <81 because mmcv's setup.py and mmengine's `mmdet::` scopes import
# pkg_resources, which setuptools 81 removed.
pip install -q "setuptools>=77,<81" wheel ninja

if ! "$py" -c "import torch" 2>/dev/null; then
  log "installing $torch_spec"
  pip install -q "$torch_spec" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
fi

# mmengine (pure Python) and mmcv's runtime requirements first: `import mmcv.ops` needs them, and mmcv
# itself is installed with --no-deps so that pip can never swap the torch build underneath it.
pip install -q "mmengine>=0.10,<1" addict numpy packaging Pillow pyyaml yapf opencv-python

if ! "$py" -c "from mmcv.ops import MultiScaleDeformableAttention" 2>/dev/null; then
  pip uninstall -q -y mmcv mmcv-lite 2>/dev/null || true
  installed=0
  if [ -d "$wheels" ]; then
    log "trying the prebuilt mmcv wheel in $wheels"
    if pip install -q --no-index --find-links "$wheels" "mmcv==2.1.0" --no-deps \
       && "$py" -c "from mmcv.ops import MultiScaleDeformableAttention" 2>/dev/null; then
      installed=1
    else
      "$py" -c "from mmcv.ops import MultiScaleDeformableAttention" 2>&1 | tail -n 3 >&2 || true
      log "the prebuilt wheel does not load with this torch; building from source instead"
      pip uninstall -q -y mmcv 2>/dev/null || true
    fi
  fi
  if [ "$installed" = 0 ]; then
    log "building mmcv 2.1.0 with ops from source (about 15 minutes on 2 cores)"
    MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
      pip install -q --no-build-isolation --no-binary mmcv "mmcv==2.1.0" --no-deps
  fi
  "$py" -c "from mmcv.ops import MultiScaleDeformableAttention" \
    || { log "mmcv ops failed to import"; exit 1; }
fi

log "installing mmdet 3.3.0, panopticapi, openmim and this package"
pip install -q "mmdet==3.3.0"
# panopticapi-lite pins numpy<2 but works with numpy 2: install without its pins.
pip install -q --no-deps panopticapi-lite
# openmim (for `mim train`) depends on opendatalab -> openxlab, which pins setuptools~=60 and old requests;
# neither is needed by `mim train/test`, so install openmim without them to keep one consistent set.
pip install -q --no-deps "openmim>=0.3.9"
pip install -q Click colorama model-index pandas requests rich tabulate
pip install -q -e "$repo[tests,deploy]"
pip install -q "setuptools>=77,<81"

"$py" - <<'PY'
import mmcv, mmdet, mmengine, torch, setuptools
from mmcv.ops import MultiScaleDeformableAttention  # noqa: F401
import mmdet_maskdino
print(f'[setup_env] torch {torch.__version__}, mmcv {mmcv.__version__} (ops OK), mmengine '
      f'{mmengine.__version__}, mmdet {mmdet.__version__}, setuptools {setuptools.__version__}, '
      f'mmdet_maskdino {mmdet_maskdino.__version__}')
PY
touch "$stamp"
