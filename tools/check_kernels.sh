#!/usr/bin/env bash
# Compiles every kernel of kernels/ with NVRTC for sm_90 and sm_80 (no GPU needed), checks every
# expected symbol and every parameter-struct layout (tests/kernels_compile.rs), assembles the
# PTX with the matching ptxas, and prints a register / spill / shared-memory table per kernel.
# Fails on any kernel that does not compile, a missing symbol, a layout drift or a register spill.
#
# Installs what it needs from PyPI when missing: nvidia-cuda-nvrtc (libnvrtc.so.13) and
# nvidia-cuda-nvcc (ptxas), both pinned to CUDA 13.0.88: a newer NVRTC emits a PTX version that the
# CUDA 13.0 driver of the lent GPU machines rejects. Usage: bash tools/check_kernels.sh
set -euo pipefail
cd "$(dirname "$0")/.."

CUDA_PIN=13.0.88
PY=${PYTHON:-python3}

# The folder of a file under site-packages/nvidia/cu13 (lib/libnvrtc.so.13, bin/ptxas), if any.
find_cu13() {
  "$PY" - "$1" <<'EOF'
import os, site, sys
roots = list(site.getsitepackages()) + [site.getusersitepackages()]
for r in roots:
    p = os.path.join(r, "nvidia", "cu13", sys.argv[1])
    if os.path.exists(p):
        print(os.path.dirname(p))
        sys.exit(0)
sys.exit(1)
EOF
}

installed_version() {
  "$PY" -m pip show "$1" 2>/dev/null | awk '/^Version:/ {print $2}'
}

ensure() {  # ensure PACKAGE [pip options...]: the pinned version, installed with pip when missing
  local pkg=$1
  shift
  if [ "$(installed_version "$pkg")" != "$CUDA_PIN" ]; then
    echo "check_kernels: installing $pkg==$CUDA_PIN"
    "$PY" -m pip install --quiet --disable-pip-version-check "$@" "$pkg==$CUDA_PIN"
  fi
}

ensure nvidia-cuda-nvrtc
lib=$(find_cu13 lib/libnvrtc.so.13) || { echo "check_kernels: libnvrtc.so.13 not found after installing nvidia-cuda-nvrtc" >&2; exit 1; }
export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# ptxas only (its dependencies are the nvcc front end's, not needed here). Optional: without it
# the NVRTC ptxas report printed by the test is the resource report.
ptxas=""
if ensure nvidia-cuda-nvcc --no-deps && bin=$(find_cu13 bin/ptxas); then
  ptxas="$bin/ptxas"
else
  echo "check_kernels: ptxas unavailable; using NVRTC's own ptxas report only"
fi

ptx_dir=$(mktemp -d)
trap 'rm -rf "$ptx_dir"' EXIT
ENGINE_REQUIRE_NVRTC=1 ENGINE_PTX_DIR="$ptx_dir" cargo test --test kernels_compile -- --nocapture

if [ -n "$ptxas" ]; then
  echo
  echo "ptxas $("$ptxas" --version | awk '/release/ {print $NF}') on the PTX the driver would load:"
  printf '  %-14s %-40s %5s %8s %7s %9s %9s\n' file kernel regs smem stack spill_st spill_ld
  status=0
  for arch in sm_90 sm_80; do
    for ptx in "$ptx_dir"/*."$arch".ptx; do
      file=$(basename "$ptx" ."$arch".ptx).cu
      if ! out=$("$ptxas" -arch="$arch" -v "$ptx" -o /dev/null 2>&1); then
        echo "check_kernels: ptxas -arch=$arch rejects the PTX of $file:" >&2
        echo "$out" >&2
        status=1
        continue
      fi
      [ "$arch" = sm_90 ] || continue
      echo "$out" | awk -v file="$file" '
        /Compiling entry function/ { match($0, /\047[^\047]+\047/); name = substr($0, RSTART + 1, RLENGTH - 2) }
        function before(unit,   s) {  # the number just before `unit` on this line, or 0
          if (!match($0, "[0-9]+ " unit)) return 0
          s = substr($0, RSTART, RLENGTH); sub(/ .*/, "", s); return s + 0
        }
        /bytes stack frame/ { stack = before("bytes stack frame"); st = before("bytes spill stores"); ld = before("bytes spill loads") }
        /Used [0-9]+ registers/ {
          printf "  %-14s %-40s %5d %8d %7d %9d %9d\n", file, name, before("registers"), before("bytes smem"), stack, st, ld
        }'
    done
  done
  exit $status
fi
