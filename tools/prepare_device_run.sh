#!/usr/bin/env bash
# Prepares the GPU run on the lent device machine (no Rust toolchain and no FFmpeg there): builds
# every CUDA test binary (tests/cuda_*.rs) and the kernel benchmark (benches/cuda_kernels.rs) with
# `--no-default-features --features cuda`, copies them, stripped of debug info, into device_run/
# (git-ignored) together with the PyTorch yardstick (../shared/tools/torch_baseline.py) and
# device_run/run.sh, and prints the commands to pass to the device tool (they run in the
# repository root there, with device_run carried).
#
# run.sh runs four phases; `all` (the plan) runs them in one device call of at most 10 minutes,
# because a lent machine goes back 30 s after a call and a fresh start costs minutes:
#   tests      every #[ignore]d test of every binary, one process per test (a kernel fault poisons
#              its process's CUDA context), in priority order, each binary within its own budget,
#              then the tiny-model parity tests with the trainers on the GPU
#   perf       PyTorch's kernels (../shared/tools/torch_baseline.py), then the kernel benchmark
#              with the same-run ratio on each row
#   model      PyTorch's paper-config iteration (../shared/tools/torch_model_baseline.py), then
#              ours at each precision (benches/cuda_train_step.rs) beside it
#   sanitizer  compute-sanitizer memcheck and racecheck on cuda_backend's tests
# A phase alone (`run.sh perf`) is for a rerun when time is left.
set -euo pipefail
cd "$(dirname "$0")/.."

FEATURES=(--no-default-features --features cuda)
# Test binaries in the order they run, with their budget in seconds (450 in all; with the parity tests, under the 600 s of one device call).
TESTS=(cuda_tensor:30 cuda_backend:70 cuda_backend_nn:70 cuda_pipeline:100 cuda_tf32:60 cuda_bf16:60 cuda_vs_cpu:60)
# The PyTorch parity tests of the tiny model, run with ENGINE_TEST_DEVICE=cuda: the trainers on the
# GPU against the same fixtures (tests/fixtures travels with the working tree), 40 s each.
PARITY=(model_parity model_parity_train_stages)

# The executable of the one target `name` from cargo's JSON messages on stdin.
executable_of() {
    python3 -c '
import json, sys
name = sys.argv[1]
exe = None
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == name and m.get("executable"):
        exe = m["executable"]
if not exe:
    sys.exit("no executable for " + name + " in cargo output")
print(exe)
' "$1"
}

rm -rf device_run
mkdir -p device_run
: >device_run/TESTS
: >device_run/PARITY
for entry in "${TESTS[@]}"; do
    name=${entry%%:*}
    if [ ! -f "tests/$name.rs" ]; then
        echo "skipping $name: tests/$name.rs does not exist" >&2
        continue
    fi
    echo "building tests/$name.rs ..." >&2
    exe=$(cargo test "${FEATURES[@]}" --test "$name" --no-run --message-format=json | executable_of "$name")
    # Debug info and symbols would take the binaries past the 64 MiB the device tool carries.
    objcopy --strip-all "$exe" "device_run/$name"
    echo "$entry" >>device_run/TESTS
done
for name in "${PARITY[@]}"; do
    echo "building tests/$name.rs ..." >&2
    exe=$(cargo test "${FEATURES[@]}" --test "$name" --no-run --message-format=json | executable_of "$name")
    objcopy --strip-all "$exe" "device_run/$name"
    echo "$name" >>device_run/PARITY
done
echo "building benches/cuda_kernels.rs ..." >&2
bench_exe=$(cargo bench "${FEATURES[@]}" --bench cuda_kernels --no-run --message-format=json | executable_of cuda_kernels)
objcopy --strip-all "$bench_exe" device_run/cuda_kernels
echo "building benches/cuda_train_step.rs ..." >&2
step_exe=$(cargo bench "${FEATURES[@]}" --bench cuda_train_step --no-run --message-format=json | executable_of cuda_train_step)
objcopy --strip-all "$step_exe" device_run/cuda_train_step
for f in torch_baseline.py torch_model_baseline.py; do
    if [ -f "../shared/tools/$f" ]; then
        cp "../shared/tools/$f" device_run/
    fi
done
chmod +x device_run/cuda_*
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain 2>/dev/null | head -1)
echo "$commit${dirty:+ (with uncommitted changes)}, built $(date -u +%FT%TZ)" >device_run/BUILD

cat >device_run/run.sh <<'EOF'
#!/usr/bin/env bash
# Runs on the device machine from the repository root; logs go to $OUT (device_run/out when unset).
# Usage: bash device_run/run.sh [all [SECONDS] | tests | perf | model | sanitizer]
#   all (the default): the four phases in one call, within SECONDS in all (default 570). A lent
#   machine goes back 30 s after a call and a fresh one costs minutes, so one full call is the
#   plan. Each phase may run until a cumulative share of the time (tests 270 s, perf 380, model
#   510, sanitizer the rest): time one phase leaves over goes to the next. Every step's output
#   is in $OUT as it goes, so a call cut short still brings back what ran.
#   A single phase runs within 580 s.
set -u
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$here/out}
mkdir -p "$out"
phase=${1:-all}
total=${2:-570}

# cudarc dlopens libnvrtc.so.13 by bare name: make sure the loader finds one, preferring the
# toolkit's 13.0 (a newer NVRTC emits PTX the 580 driver rejects), then PyPI's.
if ! ldconfig -p 2>/dev/null | grep -q 'libnvrtc\.so\.13'; then
    for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-13*/lib64 \
        $(python3 -c 'import nvidia, os; print(" ".join(os.path.join(p, "cu13", "lib") for p in nvidia.__path__))' 2>/dev/null); do
        if [ -e "$d/libnvrtc.so.13" ]; then
            export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
            break
        fi
    done
fi
export ENGINE_REQUIRE_GPU=1 RUST_BACKTRACE=1 ENGINE_UNVERIFIED_CUDA=1
# The PTX disk cache: the first test process fills it, the later ones skip NVRTC.
export XDG_CACHE_HOME=/tmp/engine-device-cache

# The running phase's deadline, in this script's SECONDS.
phase_end=$((SECONDS + 580))
# min($1, seconds left in the phase), or 0 when fewer than 5 are left.
cap() {
    local want=$1 left=$((phase_end - SECONDS))
    [ "$left" -lt "$want" ] && want=$left
    [ "$want" -lt 5 ] && want=0
    echo "$want"
}
has_torch() { [ -f "$here/$1" ] && python3 -c 'import torch' 2>/dev/null; }

# Every #[ignore]d test of binary $1, one process each, within $2 seconds in all and the phase's
# deadline (`wrap` runs each under a tool, e.g. compute-sanitizer). Appends to $log; prints one
# line a test.
log=$out/tests.log
run_binary() {
    local name=$1 budget=$2 wrap=${3:-} start=$SECONDS t left rc
    for t in $("$here/$name" --list --ignored 2>/dev/null | sed -n 's/: test$//p'); do
        left=$(cap $((budget - (SECONDS - start))))
        if [ "$left" -eq 0 ]; then
            echo "$name $t: NOT RUN (time spent)"
            continue
        fi
        echo "--- $name $t" >>"$log"
        timeout "$left" $wrap "$here/$name" --ignored --exact "$t" --test-threads=1 --nocapture >>"$log" 2>&1
        rc=$?
        echo "$name $t: exit $rc ($((SECONDS - start)) s; 124 = timed out)"
    done
}

tests_phase() {
    # Pooled buffers come NaN-filled, also when reused: a read of an unwritten element shows.
    export ENGINE_POOL_POISON=1
    : >"$out/tests.log"
    while IFS=: read -r name budget; do
        run_binary "$name" "$budget"
    done <"$here/TESTS"
    local name limit
    while read -r name; do
        limit=$(cap 40)
        if [ "$limit" -eq 0 ]; then
            echo "$name on cuda: NOT RUN (time spent)"
            continue
        fi
        echo "--- $name (ENGINE_TEST_DEVICE=cuda)" >>"$out/tests.log"
        ENGINE_TEST_DEVICE=cuda timeout "$limit" "$here/$name" --test-threads=1 --nocapture \
            --skip on_the_emulated_driver >>"$out/tests.log" 2>&1
        echo "$name on cuda: exit $? (124 = timed out)"
    done <"$here/PARITY"
    unset ENGINE_POOL_POISON
    grep -E ' (PASS|FAIL)( \(.*)?$' "$out/tests.log" >"$out/cases.txt" || true
    echo "cases: $(grep -c ' PASS$' "$out/cases.txt") PASS, $(grep -cE ' FAIL( \(.*)?$' "$out/cases.txt") FAIL"
    grep -E ' FAIL( \(.*)?$' "$out/cases.txt" | head -40
    grep -E -A4 'panicked' "$out/tests.log" | head -40
}

# PyTorch yardstick $1 (../shared/tools, copied beside run.sh) within $2 s, its output to
# $out/$3; fails when it was not run (no PyTorch, no script, or no time left).
run_torch() {
    local limit
    limit=$(cap "$2")
    if ! has_torch "$1" || [ "$limit" -eq 0 ]; then
        echo "PyTorch not timed (no PyTorch or $1 here, or no time left)"
        return 1
    fi
    echo "=== PyTorch on the same card: $1 (up to $limit s) ==="
    OUT="$out" timeout "$limit" python3 "$here/$1" >"$out/$3" 2>&1
    echo "torch exit: $? (124 = timed out)"
}

# Our benchmark $1 within $2 s: its table to $out/$1.md, then printed.
run_bench() {
    local limit
    limit=$(cap "$2")
    if [ "$limit" -eq 0 ]; then
        echo "$1: NOT RUN (time spent)"
        return
    fi
    echo "=== $1 (up to $limit s) ==="
    timeout "$limit" "$here/$1" >"$out/$1.md" 2>"$out/$1.err"
    echo "$1 exit: $? (124 = timed out)"
    tail -5 "$out/$1.err"
    cat "$out/$1.md"
}

# PyTorch first in both: the benchmark reads its JSON and prints the same-run ratios.
perf_phase() {
    if run_torch torch_baseline.py 150 torch.log; then
        grep -E '^(device|# section)' "$out/torch.log"
        sed -n '/^TABLE/,$p' "$out/torch.log" | grep -E '^(sdpa|spade|conv.*cl=True)'
        export TORCH_BASELINE_JSON="$out/torch_baseline.json"
    fi
    run_bench cuda_kernels 200
}

model_phase() {
    if run_torch torch_model_baseline.py 240 torch_model.log; then
        grep -v '^ ' "$out/torch_model.log" | tail -8
        export TORCH_MODEL_JSON="$out/torch_model_baseline.json"
    fi
    run_bench cuda_train_step 240
}

sanitizer_phase() {
    local san tool share
    san=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
    if [ -z "$san" ]; then
        echo "no compute-sanitizer on this machine"
        return
    fi
    echo "=== compute-sanitizer ($san) on cuda_backend ==="
    log=$out/sanitizer_tests.log
    : >"$log"
    for tool in memcheck racecheck; do
        # memcheck gets half of what is left, racecheck the rest.
        share=$((phase_end - SECONDS))
        [ "$tool" = memcheck ] && share=$((share / 2))
        echo "--- $tool (up to $share s)" | tee -a "$out/sanitizer.log"
        run_binary cuda_backend "$share" "$san --tool $tool --error-exitcode 99" | tee -a "$out/sanitizer.log"
    done
    grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|Invalid|Race' "$log" | sort | uniq -c | head -20
    log=$out/tests.log
}

main() {
    echo "build: $(cat "$here/BUILD" 2>/dev/null); phase: $phase"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "nvidia-smi failed"
    case "$phase" in
    all)
        t0=$SECONDS
        for spec in tests:270 perf:380 model:510 sanitizer:$total; do
            p=${spec%%:*}
            until=${spec#*:}
            [ "$until" -gt "$total" ] && until=$total
            phase_end=$((t0 + until))
            echo
            echo "=== phase $p: until $until s of $total (now $((SECONDS - t0)) s) ==="
            "${p}_phase"
        done
        echo
        echo "=== all phases done in $((SECONDS - t0)) s ==="
        ;;
    tests | perf | model | sanitizer)
        "${phase}_phase"
        ;;
    *)
        echo "usage: run.sh [all [SECONDS] | tests | perf | model | sanitizer]"
        return 2
        ;;
    esac
}

# Everything printed also goes to $out/run.log (tools/record_device_run.py reads it).
main 2>&1 | tee "$out/run.log"
exit "${PIPESTATUS[0]}"
EOF
chmod +x device_run/run.sh

ls -la device_run >&2
echo
echo "Device command (run tool, carry [\"device_run\"], timeout_s 600): every phase in one call:"
echo "  bash device_run/run.sh all 570"
echo "A phase alone, when time is left: bash device_run/run.sh tests|perf|model|sanitizer"
echo "Then: python3 tools/record_device_run.py <the folder \$OUT came back to> (benches/results/<date>-<card>.md)"
echo "Rehearse it here first, on the emulated driver: bash tools/rehearse_device_run.sh"
