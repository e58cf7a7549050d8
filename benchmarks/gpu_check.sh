#!/usr/bin/env bash
# One-shot GPU check for the device machine (issue #3): build the extension for sm_90, run the
# CUDA test suite, benchmark the kernels. Writes everything under $OUT (default ./gpu_out):
#   env.txt, build.log, test_cuda_<backend>.log, bench.log, h200.md, h200.json, gpu_check.log
# Needs torch (CUDA build), triton, nvcc and ninja; no network. Finishes in under 8 minutes:
# every step has a timeout, and a failed step is recorded and the next one still runs.
#
#   OUT=/some/dir bash benchmarks/gpu_check.sh            # from anywhere
#   bash benchmarks/gpu_check.sh --dry-run                # CPU: check the script's Python side only
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_out}
mkdir -p "$OUT"
TOTAL=${GPU_CHECK_SECONDS:-465}  # hard budget for the whole script, in seconds
START=$SECONDS
log() { echo "[gpu_check +$((SECONDS - START))s] $*" | tee -a "$OUT/gpu_check.log"; }
left() { echo $((TOTAL - (SECONDS - START))); }

if [[ "${1:-}" == "--dry-run" ]]; then
  log "dry run: benchmark pipeline on the CPU with tiny shapes"
  python benchmarks/gpu_bench.py --out "$OUT" --dry-run --budget-s 60 > "$OUT/bench.log" 2>&1
  rc=$?
  log "dry run rc=$rc (report: $OUT/h200.md)"
  exit $rc
fi

{
  date -u
  nvidia-smi || true
  nvcc --version || true
  python -c "import pytest, scipy; print('pytest', pytest.__version__, 'scipy', scipy.__version__)" || true
  nproc
  python -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)"
} > "$OUT/env.txt" 2>&1
log "env: $(tail -n 1 "$OUT/env.txt")"

# 1. build freqalign._C (CPU + CUDA kernels) for sm_90, editable, offline
export TORCH_CUDA_ARCH_LIST=9.0 FREQALIGN_BUILD_CUDA=1 MAX_JOBS=${MAX_JOBS:-$(nproc)}
export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}  # the scripts under benchmarks/ import the in-tree package
log "build: pip install -e . (timeout 240 s)"
timeout 240 python -m pip install --no-build-isolation --no-deps --no-index -e . > "$OUT/build.log" 2>&1
build_rc=$?
if (( build_rc != 0 && $(left) > 330 )); then
  log "pip rc=$build_rc; falling back to setup.py build_ext --inplace"
  timeout $(( $(left) - 230 )) python setup.py build_ext --inplace >> "$OUT/build.log" 2>&1
  build_rc=$?
fi
log "build rc=$build_rc"
if ! python -c "import freqalign.kernels" > /dev/null 2>&1; then
  # the editable install failed: make the in-tree package see kernels/ as freqalign.kernels
  ln -sfn ../kernels freqalign/kernels
  log "linked freqalign/kernels -> kernels (editable install unavailable)"
fi
python -c "import freqalign, json; print(json.dumps(freqalign.backends()))" 2>&1 | tee "$OUT/backends.json" \
  | sed 's/^/  backends: /' | tee -a "$OUT/gpu_check.log"

# 2. the CUDA test suite, backend by backend (cuda first: it has no other verification)
declare -A test_rc
for backend in cuda triton torch; do
  budget=$(( $(left) - 150 ))  # keep 150 s for the benchmark
  (( budget > 120 )) && budget=120
  if (( budget < 20 )); then
    log "tests $backend: skipped (time budget)"
    test_rc[$backend]=skipped
    continue
  fi
  log "tests $backend (timeout ${budget} s)"
  FREQALIGN_REQUIRE_GPU_BACKENDS=1 timeout "$budget" python -m pytest tests/test_cuda.py -q -p no:cacheprovider \
    -o addopts="" -rfE --maxfail=25 -k "${backend}_backend" > "$OUT/test_cuda_${backend}.log" 2>&1
  test_rc[$backend]=$?
  log "tests $backend rc=${test_rc[$backend]}: $(tail -n 1 "$OUT/test_cuda_${backend}.log")"
done

# 3. the benchmark, in what is left
budget=$(( $(left) - 15 ))
if (( budget < 30 )); then
  log "benchmark: skipped (time budget)"
  bench_rc=skipped
else
  log "benchmark (timeout ${budget} s)"
  timeout "$budget" python benchmarks/gpu_bench.py --out "$OUT" --budget-s $((budget - 45)) > "$OUT/bench.log" 2>&1
  bench_rc=$?
  log "benchmark rc=$bench_rc"
fi
log "done: build=$build_rc tests(cuda=${test_rc[cuda]} triton=${test_rc[triton]} torch=${test_rc[torch]}) bench=$bench_rc"
