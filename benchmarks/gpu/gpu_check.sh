#!/usr/bin/env bash
# One-shot GPU check for the device machine (issues #3, #11): build freqalign._C for sm_90, run
# tests/test_cuda.py for the cuda, triton and torch backends, compute-sanitizer (memcheck,
# racecheck) on the cuda kernels, the trainer on CUDA (the smoke preset end to end, then a few
# steps of the paper configuration: images/s and freq_pool's share of the step), and the kernel
# benchmark (bf16 and the key shapes first).
#
#   OUT=/some/dir bash benchmarks/gpu/gpu_check.sh            # on the GPU machine, from anywhere
#   OUT=/tmp/x bash benchmarks/gpu/gpu_check.sh --dry-run     # CPU: the Python sides, tiny shapes
#
# The dry run (tests/test_gpu_check.py, about 20 s) goes through the same sections on the CPU:
# no build; the cuda backend's test command with --collect-only; the sanitizer driver without
# the sanitizer; the smoke trainer on a tiny CSV dataset for a few steps; the paper-step check
# at 96x96; the benchmark at tiny shapes; the report, the archive and the file rule.
#
# What comes back ($OUT, default ./gpu_out) is 4 files, within the device machine's rule (at
# most 8 files, at most 2 folders down, names of [A-Za-z0-9._-]):
#   h200.md       the report: every section's status, tests, sanitizer, trainer, benchmark tables
#   h200.json     the same, machine-readable, with every benchmark measurement
#   gpu_check.log the timeline, then the tail of each section's log
#   logs.tar.gz   every section's full log (pytest -v with -rfE and --durations, JUnit XML, ...)
# The report and the archive are rewritten after each section, so a run stopped from outside
# still returns everything up to its last finished section.
#
# Time: GPU_CHECK_SECONDS (default 360) of wall time from the start of this script (the machine's
# start not included), so a second run fits in a 15-minute lease. Every section has its own
# limit, derived from what is left, and gets SIGINT at it (timeout -s INT, SIGKILL 15 s later),
# so pytest still prints its failure summary and slowest tests; a failed or timed-out section
# does not stop the next. Plan at 360 s (sections run in parallel where they can: 16 cores):
#   0-~120   build (limit min(175, 210 - 60 - now)) | tests triton + torch (xdist workers,
#            until 210) | smoke trainer (limit 150) | env (nvidia-smi, versions, tools)
#   build+   tests cuda (xdist) | compute-sanitizer memcheck, then racecheck (until 210)
#   210-     trainer, paper configuration (limit min(90, left - 110))
#   then     ResNet-50 / SE / FcaNet-ResNet-50, batch 128, eager (limit min(30, left - 80)), then
#            the fused FcaNet layer vs SE at the four stage shapes (limit min(15, left - 65))
#   then     kernel benchmark in what is left, >= 50 s (bf16 key shapes first); report
# (210 = GPU_CHECK_SECONDS - 150: train, model, bench and the report keep 150 s whatever runs late.)
#
# Interpreter: $PYTHON if set (and it imports torch), else python3, else python. CUDA_HOME: the
# environment's if it holds nvcc, else the toolkit around `which nvcc` (followed through links),
# else /usr/local/cuda, else torch.utils.cpp_extension.CUDA_HOME (whose own search is the same
# three, and costs a torch import); each must have include/cuda_runtime.h (a wrapper nvcc
# outside a toolkit does not count).
set -uo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
DRY=0
if [[ "${1:-}" == "--dry-run" ]]; then DRY=1; fi
OUT=${OUT:-$REPO/gpu_out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
TOTAL=${GPU_CHECK_SECONDS:-360}
START=$SECONDS
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
LOGS=$WORK/logs
mkdir -p "$LOGS" "$WORK/bench"
TIMELINE=$OUT/gpu_check.log
: > "$TIMELINE"
export PYTHONUNBUFFERED=1 PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}  # the in-tree package

elapsed() { echo $((SECONDS - START)); }
left() { echo $((TOTAL - (SECONDS - START))); }
log() { echo "[gpu_check +$(elapsed)s] $*" | tee -a "$TIMELINE"; }
min() { if (( $1 < $2 )); then echo "$1"; else echo "$2"; fi; }

# -- interpreter and toolkit -------------------------------------------------------------------
pick_python() {
  local c
  for c in "${PYTHON:-}" python3 python; do
    if [[ -n "$c" ]] && command -v "$c" > /dev/null 2>&1 && "$c" -c "import torch" > /dev/null 2>&1; then
      echo "$c"; return
    fi
  done
  for c in "${PYTHON:-}" python3 python; do
    if [[ -n "$c" ]] && command -v "$c" > /dev/null 2>&1; then echo "$c"; return; fi
  done
  echo python3
}
is_toolkit() { [[ -n "$1" && -x "$1/bin/nvcc" && ( -f "$1/include/cuda_runtime.h" || -f "$1/targets/x86_64-linux/include/cuda_runtime.h" ) ]]; }
find_cuda_home() {
  local candidate nvcc
  if is_toolkit "${CUDA_HOME:-}"; then echo "$CUDA_HOME"; return; fi
  nvcc=$(command -v nvcc 2> /dev/null || true)
  if [[ -n "$nvcc" ]]; then
    candidate=$(dirname "$(dirname "$(readlink -f "$nvcc")")")
    if is_toolkit "$candidate"; then echo "$candidate"; return; fi
  fi
  if is_toolkit /usr/local/cuda; then echo /usr/local/cuda; return; fi
  candidate=$("$PY" -c "from torch.utils.cpp_extension import CUDA_HOME; print(CUDA_HOME or '')" 2> /dev/null | tail -n 1)
  if is_toolkit "$candidate"; then echo "$candidate"; return; fi
  echo ""
}
PY=$(pick_python)
CUDA_HOME_FOUND=$(find_cuda_home)
if [[ -n "$CUDA_HOME_FOUND" ]]; then
  export CUDA_HOME=$CUDA_HOME_FOUND PATH=$CUDA_HOME_FOUND/bin:$PATH
fi
SANITIZER=$(command -v compute-sanitizer 2> /dev/null || true)
for candidate in "${CUDA_HOME:-/usr/local/cuda}/bin/compute-sanitizer" \
                 "${CUDA_HOME:-/usr/local/cuda}/compute-sanitizer/compute-sanitizer"; do
  if [[ -z "$SANITIZER" && -x "$candidate" ]]; then SANITIZER=$candidate; fi
done
NPROC=$(nproc 2> /dev/null || echo 4)
HAVE_XDIST=0; HAVE_PT_TIMEOUT=0
if "$PY" -c "import xdist" > /dev/null 2>&1; then HAVE_XDIST=1; fi
if "$PY" -c "import pytest_timeout" > /dev/null 2>&1; then HAVE_PT_TIMEOUT=1; fi
log "python: $PY ($(command -v "$PY" || echo missing)); CUDA_HOME: ${CUDA_HOME:-none}; compute-sanitizer:" \
    "${SANITIZER:-none}; cores: $NPROC; pytest-xdist: $HAVE_XDIST; pytest-timeout: $HAVE_PT_TIMEOUT;" \
    "budget ${TOTAL}s; dry run: $DRY; work: $WORK"

# -- sections, records, report -----------------------------------------------------------------
record() {  # NAME RC SECONDS LIMIT: one line of sections.jsonl
  printf '{"name": "%s", "rc": %d, "seconds": %d, "limit": %d}\n' "$1" "$2" "$3" "$4" >> "$WORK/sections.jsonl"
}
skip() {  # NAME REASON (no quotes in REASON)
  printf '{"name": "%s", "skipped": "%s"}\n' "$1" "$2" >> "$WORK/sections.jsonl"
  log "$1: skipped ($2)"
}
run_section() {  # NAME LIMIT CMD...: CMD under a SIGINT timeout, its output in logs/NAME.log
  local name=$1 limit=$2 t0=$SECONDS rc
  shift 2
  if (( limit < 5 )); then skip "$name" "no time left"; return 0; fi
  log "$name: start, limit ${limit}s: $*"
  timeout -s INT -k 15 "$limit" "$@" > "$LOGS/$name.log" 2>&1 &
  local pid=$!
  echo "$pid" >> "$WORK/pids"  # timeout leads its own process group; the trap signals it
  wait "$pid"
  rc=$?
  record "$name" "$rc" $((SECONDS - t0)) "$limit"
  log "$name: rc=$rc after $((SECONDS - t0))s | $(grep -v '^\s*$' "$LOGS/$name.log" | tail -n 1 | cut -c1-200)"
  return $rc
}
snapshot() {  # the report and the log archive on $OUT, as of now
  local dry_flag=()
  if (( DRY )); then dry_flag=(--dry-run); fi
  "$PY" -m benchmarks.gpu.gpu_report --work "$WORK" --out "$OUT" --budget "$TOTAL" --elapsed "$(elapsed)" \
    "${dry_flag[@]}" >> "$LOGS/report.log" 2>&1 || log "report: failed (see logs/report.log)"
  tar -czf "$OUT/.logs.tar.gz.tmp" -C "$WORK" logs sections.jsonl bench 2> /dev/null \
    && mv -f "$OUT/.logs.tar.gz.tmp" "$OUT/logs.tar.gz"
}
finalize() {  # [interrupted]
  local pid
  if [[ "${1:-}" == interrupted && -f "$WORK/pids" ]]; then  # SIGINT the sections still running
    for pid in $(cat "$WORK/pids"); do
      if [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q '^timeout '; then
        kill -INT "$pid" 2> /dev/null
      fi
    done
    sleep 3
  fi
  snapshot
  {
    echo
    echo "===== the last lines of each section's log (full logs: logs.tar.gz) ====="
    for f in "$LOGS"/*.log; do
      [[ -f "$f" ]] || continue
      echo
      echo "----- $(basename "$f") (last 120 lines) -----"
      tail -n 120 "$f"
    done
  } >> "$TIMELINE"
  local files
  files=$(find "$OUT" -type f | wc -l)
  log "done in $(elapsed)s of ${TOTAL}s; $files files in $OUT: $(cd "$OUT" && find . -type f | sort | tr '\n' ' ')"
  if (( files > 8 )); then log "WARNING: more than 8 files in \$OUT"; fi
  if [[ -z "${GPU_CHECK_KEEP_WORK:-}" ]]; then rm -rf "$WORK"; fi
}
trap 'log "interrupted"; finalize interrupted; exit 130' INT TERM

export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} MAX_JOBS=${MAX_JOBS:-$NPROC} TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
export FREQALIGN_BUILD_CUDA=1
if (( ! DRY )); then export FREQALIGN_REQUIRE_GPU_BACKENDS=1; fi
TESTS_DEADLINE=$((TOTAL - 150))  # tests, sanitizer and smoke end here: 150 s stay for train, model, bench, report

tests_cmd() {  # BACKEND WORKERS -> the array TESTS
  TESTS=("$PY" -m pytest tests/test_cuda.py -v -rfE --durations=15 -p no:cacheprovider -o addopts=""
         --maxfail=40 -k "$1_backend" --junitxml="$LOGS/tests_$1.xml")
  if (( HAVE_XDIST && $2 > 1 )); then TESTS+=(-n "$2"); fi
  if (( HAVE_PT_TIMEOUT )); then TESTS+=(--timeout=150); fi
  if (( DRY )); then TESTS+=(--collect-only); fi
}
workers() { local n=$(( NPROC / $1 )); (( n < 1 )) && n=1; min "$n" "$2"; }

# -- phase 1: build | tests triton, torch | smoke trainer --------------------------------------
if (( ! DRY )) && ! "$PY" -c "import freqalign.kernels" > /dev/null 2>&1; then
  ln -sfn ../kernels freqalign/kernels  # no editable install there: kernels/ as freqalign.kernels
  log "linked freqalign/kernels -> ../kernels (no editable install)"
fi
declare -A PIDS
if (( DRY )); then
  skip build "dry run"
else
  run_section build "$(min 175 $((TESTS_DEADLINE - 60 - $(elapsed))))" \
    "$PY" setup.py build_ext --build-lib "$WORK/ext" --build-temp "$WORK/build_tmp" &
  PIDS[build]=$!
fi
if (( DRY )); then
  skip tests_triton "dry run: the cuda command is collected only"
  skip tests_torch "dry run: the cuda command is collected only"
else
  tests_cmd triton "$(workers 3 6)"
  run_section tests_triton $((TESTS_DEADLINE - $(elapsed))) "${TESTS[@]}" &
  PIDS[tests_triton]=$!
  tests_cmd torch "$(workers 6 3)"
  run_section tests_torch $((TESTS_DEADLINE - $(elapsed))) "${TESTS[@]}" &
  PIDS[tests_torch]=$!
fi
if (( DRY )); then  # the same CLI on the CPU, on a tiny CSV dataset and a few steps
  "$PY" -c "from benchmarks.lib.tiny_data import make_tiny_data; make_tiny_data('$WORK/tiny')" \
    > "$LOGS/smoke_data.log" 2>&1
  run_section smoke "$(min 60 $((TESTS_DEADLINE - $(elapsed))))" "$PY" -m freqalign train --preset smoke \
    --device cpu --seed 0 --out "$WORK/smoke_run" "source=csv:$WORK/tiny/source/labels.csv" \
    "target=csv:$WORK/tiny/target/labels.csv" warmup_steps=2 dann_warmup_steps=1 steps_per_position=1 search_stride=40 \
    finetune_steps=1 eval_every=2 checkpoint_every=2 log_every=1 criterion_max_samples=16 domain_fit_steps=3 \
    threads=1 progress=false &
else  # the smoke preset as it ships (the embedded dataset is generated on first use)
  run_section smoke "$(min 150 $((TESTS_DEADLINE - $(elapsed))))" "$PY" -m freqalign train --preset smoke \
    --device cuda --seed 0 --out "$WORK/smoke_run" progress=false &
fi
PIDS[smoke]=$!

# -- env (while phase 1 runs) -----------------------------------------------------------
env_t0=$SECONDS
{
  date -u; uname -a; echo "cores: $NPROC"; free -g 2> /dev/null | head -n 2
  timeout 20 nvidia-smi || echo "nvidia-smi: not available"
  timeout 10 nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm,clocks.mem,power.draw,temperature.gpu \
    --format=csv 2> /dev/null
  if [[ -n "${CUDA_HOME:-}" ]]; then "$CUDA_HOME/bin/nvcc" --version | tail -n 2; else echo "nvcc: no CUDA toolkit found"; fi
  if [[ -n "$SANITIZER" ]]; then "$SANITIZER" --version | tail -n 1; fi
  echo "python: $PY -> $(command -v "$PY")"
  "$PY" - << 'EOF'
import importlib, sys
print(sys.version.split()[0], sys.executable)
for name in ("torch", "triton", "numpy", "scipy", "pytest", "xdist", "pytest_timeout", "setuptools", "ninja"):
    try:
        module = importlib.import_module(name)
        print(f"{name} {getattr(module, '__version__', '?')}")
    except Exception as exc:  # noqa: BLE001
        print(f"{name}: not importable ({type(exc).__name__})")
import torch
print("cuda", torch.version.cuda, "available", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
EOF
} > "$LOGS/env.log" 2>&1
record env 0 $((SECONDS - env_t0)) 60
log "env: $(grep -m1 -E '^NVIDIA|^cuda ' "$LOGS/env.log" || true)"


# -- phase 2 (after the build): tests cuda | sanitizer -----------------------------------------
BUILD_OK=0
if (( ! DRY )); then
  wait "${PIDS[build]}"
  so=$(find "$WORK/ext" -name '_C*.so' 2> /dev/null | head -n 1)
  if [[ -n "$so" ]]; then
    cp "$so" "freqalign/.$(basename "$so").tmp" && mv -f "freqalign/.$(basename "$so").tmp" "freqalign/$(basename "$so")" \
      && BUILD_OK=1
  fi
  log "build: $([[ $BUILD_OK == 1 ]] && echo "installed freqalign/$(basename "$so")" || echo 'no extension built')"
  snapshot
fi
"$PY" -c "import freqalign, json; print(json.dumps(freqalign.backends()))" > "$LOGS/backends.json" 2>&1
log "backends: $(tail -n 1 "$LOGS/backends.json")"

tests_cmd cuda "$(workers 4 4)"
if (( DRY || BUILD_OK )); then
  run_section tests_cuda $((TESTS_DEADLINE - $(elapsed))) "${TESTS[@]}" &
  PIDS[tests_cuda]=$!
else
  skip tests_cuda "the build failed"
fi
if (( DRY )); then
  run_section sanitize_memcheck 60 "$PY" -m benchmarks.gpu.gpu_sanitize --dry-run --out "$LOGS/sanitize_memcheck.json" &
  PIDS[sanitize]=$!
  skip sanitize_racecheck "dry run"
elif (( ! BUILD_OK )); then
  skip sanitize_memcheck "the build failed"; skip sanitize_racecheck "the build failed"
elif [[ -z "$SANITIZER" ]]; then
  skip sanitize_memcheck "compute-sanitizer not found"; skip sanitize_racecheck "compute-sanitizer not found"
else
  SAN=("$SANITIZER")  # options this version has: an exit status on errors, fewer repeats, only our kernels
  san_help=$("$SANITIZER" --help 2>&1)
  if grep -q -- "--error-exitcode" <<< "$san_help"; then SAN+=(--error-exitcode 86); fi
  if grep -q -- "--print-limit" <<< "$san_help"; then SAN+=(--print-limit 25); fi
  if grep -q -- "--kernel-name" <<< "$san_help"; then SAN+=(--kernel-name kns=freqalign); fi
  (
    span=$(( (TESTS_DEADLINE - $(elapsed)) / 2 ))
    run_section sanitize_memcheck "$(min 100 "$span")" env PYTORCH_NO_CUDA_MEMORY_CACHING=1 "${SAN[@]}" \
      --tool memcheck "$PY" -m benchmarks.gpu.gpu_sanitize --backend cuda --out "$LOGS/sanitize_memcheck.json"
    run_section sanitize_racecheck "$(min 100 $((TESTS_DEADLINE - $(elapsed))))" env PYTORCH_NO_CUDA_MEMORY_CACHING=1 \
      "${SAN[@]}" --tool racecheck "$PY" -m benchmarks.gpu.gpu_sanitize --backend cuda --out "$LOGS/sanitize_racecheck.json"
  ) &
  PIDS[sanitize]=$!
fi
for job in smoke tests_triton tests_torch tests_cuda sanitize; do
  if [[ -n "${PIDS[$job]:-}" ]]; then
    wait "${PIDS[$job]}"
    if [[ $job == smoke && -f "$WORK/smoke_run/results.json" ]]; then cp "$WORK/smoke_run/results.json" "$LOGS/smoke_results.json"; fi
    snapshot
  fi
done

# -- phase 3: the paper configuration's steps, then the kernel benchmark -----------------------
if (( DRY )); then
  run_section train 60 "$PY" -m benchmarks.gpu.gpu_train_check --dry-run --backends triton --out "$LOGS/train.json"
else
  limit=$(min 90 $(( $(left) - 110 )))
  run_section train "$limit" "$PY" -m benchmarks.gpu.gpu_train_check --budget-s $(( limit > 35 ? limit - 25 : 10 )) \
    --out "$LOGS/train.json"
fi
snapshot
# ResNet-50, SE-ResNet-50 and FcaNet-ResNet-50 (issues 12, 18): training steps at batch 128, eager
# layers only (compiling four ResNet-50s would take minutes); then the fused FcaNet layer against SE
# and the copy-bandwidth floor at the four stage shapes (issue 18)
if (( DRY )); then
  run_section model 60 "$PY" -m benchmarks.models.model_bench --device cpu --batch 1 --size 224 --reps 1 \
    --warmup 1 --no-compile --no-peak --out "$WORK/bench/model_bench.md"
  run_section attention 60 "$PY" -m benchmarks.kernels.attention_bench --device cpu --batch 1 --reps 1 --no-compile \
    --out "$WORK/bench/attention_bench.md"
else
  run_section model "$(min 30 $(( $(left) - 80 )))" "$PY" -m benchmarks.models.model_bench --device cuda \
    --batch 128 --reps 5 --no-compile --out "$WORK/bench/model_bench.md"
  run_section attention "$(min 15 $(( $(left) - 65 )))" "$PY" -m benchmarks.kernels.attention_bench --device cuda \
    --batch 128 --reps 9 --no-compile --out "$WORK/bench/attention_bench.md"
fi
snapshot
if (( DRY )); then
  run_section bench 60 "$PY" -m benchmarks.gpu.gpu_bench --out "$WORK/bench" --dry-run --budget-s 20
else
  limit=$(( $(left) - 12 ))
  run_section bench "$limit" "$PY" -m benchmarks.gpu.gpu_bench --out "$WORK/bench" --budget-s $(( limit > 30 ? limit - 15 : 10 ))
fi
finalize
