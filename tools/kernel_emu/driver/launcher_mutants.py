#!/usr/bin/env python3
"""Plants bugs in the Rust kernel launchers, one at a time, and checks that the GPU tests on the
emulated driver catch each: evidence that those tests see the launchers, not only the kernels.

Each mutant is a one-line text edit of a file under src/backend/cuda/launch/ and the #[ignore]d
GPU test that must fail with it. The file is restored after each run, also on an error or Ctrl-C.
Needs what tests/common/emulated.rs needs (a C++ compiler, NVRTC on LD_LIBRARY_PATH); builds the
emulated driver into a temporary folder. A few minutes (one incremental build per mutant).

Usage: python3 tools/kernel_emu/driver/launcher_mutants.py
"""
import os
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
LAUNCH = "src/backend/cuda/launch/"

# (what, file, text, replacement, test binary, test)
MUTANTS = [
    ("bf16 backward slabs all written at row 0", LAUNCH + "corr_warp/bf16.rs",
     "            o_off: i(r0),\n", "            o_off: 0,\n",
     "cuda_bf16", "bf16_corr_warp_matches_emulated_cpu"),
    ("bf16 backward slab buffers half the size", LAUNCH + "corr_warp/bf16.rs",
     "let (mut p, mut ds) = (gpu.alloc(b * r * pd.mp / 2)?, gpu.alloc(b * r * pd.mp / 2)?);",
     "let (mut p, mut ds) = (gpu.alloc(b * r * pd.mp / 4)?, gpu.alloc(b * r * pd.mp / 4)?);",
     "cuda_bf16", "bf16_corr_warp_matches_emulated_cpu"),
    ("softmax backward given dy for y", LAUNCH + "mod.rs",
     "launch!(gpu, sym, c, &a, y, dy, dx)", "launch!(gpu, sym, c, &a, dy, y, dx)",
     "cuda_vs_cpu", "softmax_matches_cpu"),
    ("matmul_simple's ldb of a transposed B", LAUNCH + "mod.rs",
     "ldb: if trans_b { k } else { n } as i64,", "ldb: if trans_b { n } else { k } as i64,",
     "cuda_vs_cpu", "matmul_matches_cpu"),
    ("instance norm backward without its weight", LAUNCH + "norm.rs",
     "let a = instance_args(n, c, hw, 0.0, weight.is_some(), false);",
     "let a = instance_args(n, c, hw, 0.0, false, false);",
     "cuda_vs_cpu", "instance_norm_matches_cpu"),
    ("conv forward without its bias", LAUNCH + "conv.rs",
     "    arg_or_null(&mut b, bias);\n    b.arg(y);\n    // SAFETY: arguments match the conv forward",
     "    arg_or_null(&mut b, None);\n    b.arg(y);\n    // SAFETY: arguments match the conv forward",
     "cuda_backend_nn", "conv_pool_resize_unfold_match_cpu"),
]


def run(cmd, **kw):
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, **kw)


def main():
    driver = tempfile.mkdtemp(prefix="emulated_cuda_")
    b = run(["bash", "tools/kernel_emu/driver/build.sh", driver])
    if b.returncode != 0:
        sys.exit("building the emulated driver failed:\n" + b.stdout + b.stderr)
    env = dict(os.environ, ENGINE_REQUIRE_GPU="1", ENGINE_EMULATED_GPU="1")
    env["LD_LIBRARY_PATH"] = driver + ":" + env.get("LD_LIBRARY_PATH", "")
    missed = 0
    for what, path, old, new, binary, test in MUTANTS:
        full = os.path.join(ROOT, path)
        with open(full) as f:
            src = f.read()
        if src.count(old) != 1:
            sys.exit(f"{what}: the text to mutate occurs {src.count(old)} times in {path}")
        try:
            with open(full, "w") as f:
                f.write(src.replace(old, new))
            built = run(["cargo", "test", "--test", binary, "--no-run"])
            exe = [l.split("(")[1].rstrip(")") for l in built.stderr.splitlines() if "Executable" in l]
            if built.returncode != 0 or not exe:
                print(f"{what}: CAUGHT by the compiler", flush=True)
                continue
            r = run([os.path.join(ROOT, exe[0]), "--ignored", "--exact", test, "--nocapture"],
                    env=env, timeout=600)
            text = r.stdout + r.stderr
            fails = sum(l.endswith("FAIL") for l in text.splitlines())
            why = next((l for l in text.splitlines() if l.startswith(("emulated cuda:", "emu:"))), "")
            caught = r.returncode != 0
            missed += not caught
            print(f"{what}: {'CAUGHT' if caught else 'MISSED'} by {binary}::{test} "
                  f"(exit {r.returncode}, {fails} failing cases{'; ' + why if why else ''})", flush=True)
        finally:
            with open(full, "w") as f:
                f.write(src)
    print(f"{len(MUTANTS) - missed} of {len(MUTANTS)} launcher mutants caught")
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
