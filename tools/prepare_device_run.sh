#!/usr/bin/env bash
# Prepares the GPU run on the lent device machine (no Rust toolchain there): builds the CUDA-vs-CPU
# tests (tests/cuda_vs_cpu.rs: launchers; tests/cuda_backend.rs: the Backend trait and autograd)
# and the kernel benchmark (benches/cuda_kernels.rs) with
# `--no-default-features --features cuda` (no FFmpeg there), copies the two executables, stripped
# of debug info, into device_run/ (git-ignored) with device_run/run.sh, and prints the command to
# pass to the device tool (it runs in the repository root there, with device_run carried).
set -euo pipefail
cd "$(dirname "$0")/.."

FEATURES=(--no-default-features --features cuda)

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

echo "building tests/cuda_vs_cpu.rs ..." >&2
test_exe=$(cargo test "${FEATURES[@]}" --test cuda_vs_cpu --no-run --message-format=json | executable_of cuda_vs_cpu)
tensor_exe=$(cargo test "${FEATURES[@]}" --test cuda_tensor --no-run --message-format=json | executable_of cuda_tensor)
backend_exe=$(cargo test "${FEATURES[@]}" --test cuda_backend --no-run --message-format=json | executable_of cuda_backend)
echo "building benches/cuda_kernels.rs ..." >&2
bench_exe=$(cargo bench "${FEATURES[@]}" --bench cuda_kernels --no-run --message-format=json | executable_of cuda_kernels)

rm -rf device_run
mkdir -p device_run
# Debug info would take the test binary past the 64 MiB the device tool carries.
objcopy --strip-debug "$test_exe" device_run/cuda_vs_cpu
objcopy --strip-debug "$bench_exe" device_run/cuda_kernels
objcopy --strip-debug "$tensor_exe" device_run/cuda_tensor
objcopy --strip-debug "$backend_exe" device_run/cuda_backend
chmod +x device_run/cuda_vs_cpu device_run/cuda_kernels device_run/cuda_tensor device_run/cuda_backend
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain 2>/dev/null | head -1)
echo "$commit${dirty:+ (with uncommitted changes)}, built $(date -u +%FT%TZ)" >device_run/BUILD

cat >device_run/run.sh <<'EOF'
#!/usr/bin/env bash
# Runs on the device machine from the repository root: the CUDA-vs-CPU tests, then the kernel
# benchmark; logs go to $OUT (or device_run/out when OUT is unset).
set -u
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$here/out}
mkdir -p "$out"
echo "build: $(cat "$here/BUILD" 2>/dev/null)"
nvidia-smi -L || echo "nvidia-smi failed"

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
echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"

export ENGINE_REQUIRE_GPU=1 RUST_BACKTRACE=1
# The PTX disk cache: the first test process fills it, the later ones skip NVRTC.
export XDG_CACHE_HOME=/tmp/engine-device-cache
echo "=== tests (cuda_tensor: host<->device copies) ==="
timeout 60 "$here/cuda_tensor" --ignored --test-threads=1 --nocapture 2>&1 | tail -12
echo "=== tests (cuda_backend: the Backend trait and autograd on CUDA) ==="
: >"$out/backend.log"
start=$SECONDS
for t in typed_errors_and_empty_tensors layout_ops_match_cpu elementwise_ops_match_cpu \
    reductions_and_matmul_match_cpu losses_and_adam_match_cpu conv_pool_resize_unfold_match_cpu \
    norms_softmax_corr_warp_match_cpu the_pool_stops_calling_the_driver_after_the_first_step \
    autograd_graph_matches_cpu; do
    left=$((240 - (SECONDS - start)))
    if [ "$left" -le 5 ]; then
        echo "$t: not run (the 240 s budget is spent)"
        continue
    fi
    echo "--- $t" >>"$out/backend.log"
    timeout "$left" "$here/cuda_backend" --ignored --exact "$t" --test-threads=1 --nocapture >>"$out/backend.log" 2>&1
    echo "$t: exit $? ($((SECONDS - start)) s elapsed)"
done
grep -E ' (PASS|FAIL)( \(.*)?$' "$out/backend.log" >"$out/backend_cases.txt" || true
echo "backend cases: $(grep -c ' PASS$' "$out/backend_cases.txt") PASS, $(grep -cE ' FAIL( \(.*)?$' "$out/backend_cases.txt") FAIL"
grep -E ' FAIL( \(.*)?$' "$out/backend_cases.txt" | head -60
grep -E -A3 'panicked' "$out/backend.log" | head -30
echo "=== tests (cuda_vs_cpu) ==="
# One process per test, in priority order: a kernel fault poisons the CUDA context of its
# process, and must not take the other families down with it. 240 s for all of them together.
test_rc=0
start=$SECONDS
: >"$out/tests.log"
for t in corr_warp_matches_cpu instance_norm_matches_cpu pono_matches_cpu spade_modulation_matches_cpu \
    softmax_matches_cpu conv2d_matches_cpu matmul_matches_cpu; do
    left=$((240 - (SECONDS - start)))
    if [ "$left" -le 5 ]; then
        echo "$t: not run (the 240 s test budget is spent)" | tee -a "$out/tests.log"
        test_rc=124
        continue
    fi
    echo "--- $t" >>"$out/tests.log"
    timeout "$left" "$here/cuda_vs_cpu" --ignored --exact "$t" --test-threads=1 --nocapture >>"$out/tests.log" 2>&1
    rc=$?
    echo "$t: exit $rc ($((SECONDS - start)) s elapsed; 124 = timed out)"
    [ "$rc" -ne 0 ] && test_rc=$rc
done
grep -E ' (PASS|FAIL)( \(.*)?$' "$out/tests.log" >"$out/cases.txt" || true
echo "cases: $(grep -c ' PASS$' "$out/cases.txt") PASS, $(grep -cE ' FAIL( \(.*)?$' "$out/cases.txt") FAIL"
grep -E ' FAIL( \(.*)?$' "$out/cases.txt" | head -60
grep -E -A1 'panicked' "$out/tests.log" | head -30; grep -E 'no GPU|^GPU:' "$out/tests.log" | sort | uniq -c

echo "=== bench (cuda_kernels) ==="
timeout 180 "$here/cuda_kernels" >"$out/bench.md" 2>"$out/bench.err"
echo "bench exit: $? (124 = timed out)"
tail -20 "$out/bench.err"
cat "$out/bench.md"
exit $test_rc
EOF
chmod +x device_run/run.sh

ls -la device_run >&2
echo
echo "Device command (run tool, carry [\"device_run\"], timeout_s 480):"
echo "  bash device_run/run.sh"
