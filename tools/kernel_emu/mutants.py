"""Checks that the kernel emulation (run.sh) has teeth: each mutant below is a small, realistic bug
put into a copy of kernels/ (a swapped fragment register, a missing barrier, an off-by-one bound,
...), and run.sh must fail on every one. Not part of `cargo test` (about 2 minutes); run it after
changing emu.hpp or main.cpp. A mutant whose text no longer occurs in kernels/ is reported as
stale, to be updated with the kernels.

Usage: python3 tools/kernel_emu/mutants.py
"""

import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
KERNELS = os.path.join(HERE, "..", "..", "kernels")
FILES = ["common.cuh", "conv.cu", "matmul.cu"]

# name, file, text, replacement
MUTANTS = [
    (
        "A fragment a1 reads A[g][t+4] (a2's element)",
        "common.cuh",
        "af[i][1] = __float_as_uint(As[ks + t][r + 8]);",
        "af[i][1] = __float_as_uint(As[ks + t + 4][r]);",
    ),
    (
        "tf32 operands not rounded",
        "common.cuh",
        "static float prep(float v) { return tf32_round(v); }",
        "static float prep(float v) { return v; }",
    ),
    (
        "mma store bound off by one (writes past the output)",
        "common.cuh",
        "                    if (c >= cols) continue;",
        "                    if (c > cols) continue;",
    ),
    (
        "matmul: no barrier after the tile product",
        "matmul.cu",
        "                    tile.product(As, Bs);\n                    __syncthreads();",
        "                    tile.product(As, Bs);",
    ),
    (
        "matmul: one thread skips a barrier",
        "matmul.cu",
        "                    __syncthreads();\n                    tile.product(As, Bs);",
        "                    if (threadIdx.x != 77) __syncthreads();\n                    tile.product(As, Bs);",
    ),
    (
        "matmul: A tile not zeroed past m / k (stale shared memory; detected with clang++)",
        "matmul.cu",
        "        float v = 0.f;\n        if (gm < p.m && gk < p.k) v = p.trans_a ? A[gk * p.lda + gm] : A[gm * p.lda + gk];\n"
        "        As[kk][r] = T::prep(v);",
        "        if (gm < p.m && gk < p.k) As[kk][r] = T::prep(p.trans_a ? A[gk * p.lda + gm] : A[gm * p.lda + gk]);",
    ),
    (
        "conv forward: weight row bound off by one (reads past w)",
        "conv.cu",
        "As[kk][r] = T::prep((co < d.mg && gk < d.k)",
        "As[kk][r] = T::prep((co <= d.mg && gk < d.k)",
    ),
    (
        "conv forward: no barrier after the row table",
        "conv.cu",
        "                    fill_rowtab<BK>(a, d, k0, d.hw, tab);\n                    __syncthreads();",
        "                    fill_rowtab<BK>(a, d, k0, d.hw, tab);",
    ),
]


def first_complaint(log):
    """The emulator's abort message or the first failing check, shortened."""
    for line in log.splitlines():
        if line.startswith("emu:") or "FAIL" in line:
            return " ".join(line.split())[:110]
    return "(no message)"


def main():
    survivors = stale = 0
    for name, file, old, new in MUTANTS:
        with tempfile.TemporaryDirectory() as d:
            for f in FILES:
                shutil.copy(os.path.join(KERNELS, f), d)
            path = os.path.join(d, file)
            text = open(path).read()
            if text.count(old) != 1:
                print(f"STALE    {name}: its text occurs {text.count(old)} times in {file}")
                stale += 1
                continue
            open(path, "w").write(text.replace(old, new))
            env = dict(os.environ, KERNELS_DIR=d)
            run = subprocess.run(
                ["bash", os.path.join(HERE, "run.sh")], env=env, capture_output=True, text=True, timeout=600
            )
            log = run.stdout + run.stderr
            if run.returncode == 0:
                print(f"SURVIVED {name}")
                survivors += 1
            else:
                print(f"caught   {name}: {first_complaint(log)}")
    print(f"{len(MUTANTS)} mutants, {survivors} survived, {stale} stale")
    return 1 if survivors or stale else 0


if __name__ == "__main__":
    sys.exit(main())
