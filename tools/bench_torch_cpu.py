"""Times the CPU benchmark cases of benches/cpu_ops.rs in PyTorch on this machine.

Writes {case name: median seconds} as JSON; feed it to the Rust bench:
    python3 tools/bench_torch_cpu.py /tmp/torch_cpu.json
    TORCH_CPU_JSON=/tmp/torch_cpu.json cargo bench --bench cpu_ops
The case names must match benches/cpu_ops.rs exactly. Thread count = all cores, like rayon's.
"""
import json
import os
import sys
import time

import torch
import torch.nn.functional as F


def median_secs(fn, reps=10):
    fn()
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return sorted(times)[reps // 2]


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else "torch_cpu.json"
    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(0)
    results = {}
    with torch.no_grad():
        for batch in (1, 4):
            x = torch.randn(batch, 64, 64, 64)
            w = torch.randn(64, 64, 3, 3) * 0.05
            b = torch.randn(64) * 0.05
            name = f"conv3x3 64->64 @64x64 fwd, batch {batch}"
            results[name] = median_secs(lambda: F.conv2d(x, w, b, padding=1))
    x = torch.randn(4, 64, 64, 64, requires_grad=True)
    w = (torch.randn(64, 64, 3, 3) * 0.05).requires_grad_()
    b = (torch.randn(64) * 0.05).requires_grad_()

    def fwd_bwd():
        y = F.conv2d(x, w, b, padding=1)
        y.backward(y.detach())

    results["conv3x3 64->64 @64x64 fwd+bwd (dx, dw, db), batch 4"] = median_secs(fwd_bwd)
    a = torch.randn(1024, 1024)
    m = torch.randn(1024, 1024)
    with torch.no_grad():
        results["matmul 1024x1024x1024"] = median_secs(lambda: a @ m)
    results["_torch_version"] = torch.__version__
    results["_threads"] = torch.get_num_threads()
    with open(out_path, "w") as f:
        json.dump(results, f, indent=1)
    for k, v in results.items():
        print(k, v)


if __name__ == "__main__":
    main()
