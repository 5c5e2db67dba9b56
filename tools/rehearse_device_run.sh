#!/usr/bin/env bash
# Rehearses the GPU machine's run here, without a GPU: device_run/run.sh (written by
# tools/prepare_device_run.sh, which must have run) with the emulated CUDA driver of
# tools/kernel_emu/driver first on LD_LIBRARY_PATH. ENGINE_EMULATED_GPU=1 makes the cases too
# large to emulate step aside, ENGINE_BENCH_SMOKE=1 runs the benchmarks at small shapes, and
# DEV=cpu makes the PyTorch yardsticks do their CPU dry run (its model rows have the smoke
# setup's names, so the same-run join shows). What it checks is the mechanics: every binary
# starts, finds the device, its tests and fixtures, and the logs land in $OUT. Timings mean
# nothing here, and the tests phase runs past some binaries' budgets (they print NOT RUN).
# Usage: bash tools/rehearse_device_run.sh [PHASE ...]   (default: all, as the device call runs it)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x device_run/run.sh ] || { echo "no device_run/run.sh: run tools/prepare_device_run.sh first" >&2; exit 1; }
lib=$(mktemp -d)
trap 'rm -rf "$lib"' EXIT
bash tools/kernel_emu/driver/build.sh "$lib" >/dev/null
# NVRTC stays the real one: run.sh finds it itself (ldconfig, the CUDA toolkit, or PyPI's).
export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export ENGINE_EMULATED_GPU=1 ENGINE_BENCH_SMOKE=1 DEV=cpu
phases=("$@")
[ ${#phases[@]} -gt 0 ] || phases=(all)
for phase in "${phases[@]}"; do
    export OUT=${REHEARSAL_OUT:-/tmp/device_rehearsal}/$phase
    rm -rf "$OUT" && mkdir -p "$OUT"
    echo "=== rehearsal: run.sh $phase (logs in $OUT) ==="
    start=$SECONDS
    bash device_run/run.sh "$phase"
    echo "=== run.sh $phase: exit $?, $((SECONDS - start)) s ==="
    # What a GPU session then records (here into the rehearsal's folder, not benches/results).
    python3 tools/record_device_run.py "$OUT" --out "$OUT/results.md"
done
