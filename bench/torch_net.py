"""PyTorch CPU nn.LSTM / nn.GRU networks (stacked, bidirectional), timed for a side by side
with `cargo bench --bench sweep -- --layers 2 --bidirectional ...` (the crate's CPU and
GPU networks) on the same machine.

Each point: a float32, time-major network (`num_layers`, `bidirectional`, biases) on an
input x [T, B, I]; "fwd" is the forward alone under `torch.no_grad()`, "fwdbwd" is the
forward, loss = (output * g).sum() with a fixed random g [T, B, D*H], and `.backward()`
(gradients on the weights and on x). Warm-up runs, then the median and min of the timed
runs (wall time), and GFLOP/s with the sweep's formula: forward 2*T*B*G*H*(I_l + H)
summed over layers and directions (I_l = I for layer 0, D*H above it; G = 4 LSTM, 3 GRU),
forward+backward 3x that.

Installing torch here: follow shared/tools/torch-cpu.md (../shared/tools/torch-cpu.md from
the repository root). The registry's wheels are the CUDA builds; it describes a light
install, the torch wheel alone with stand-ins for the CUDA libraries, into a venv such as
/tmp/torch-venv, hence the LD_LIBRARY_PATH below. Tests and CI never need torch.

Running (threads: match the sweep's, 2 on the CI machine; run it in the same window as
the sweep, alternating, as this machine's speed drifts):

    LD_LIBRARY_PATH=/tmp/torch-venv/cudastubs /tmp/torch-venv/bin/python \
        bench/torch_net.py --cell lstm,gru --layers 2 --bidirectional \
        --seq 50 --batch 16 --input 128 --hidden 256 --runs 5 --threads 2

(`--no-bidirectional` for one direction; `--help` lists the flags.)
"""

import argparse
import os
import platform
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cell", default="lstm,gru", help="comma-separated: lstm, gru (default lstm,gru)")
    ap.add_argument("--layers", type=int, default=2, help="num_layers L (default 2)")
    ap.add_argument(
        "--bidirectional",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="two directions per layer (default on; --no-bidirectional for one)",
    )
    ap.add_argument("--seq", type=int, default=50, help="T (default 50)")
    ap.add_argument("--batch", type=int, default=16, help="B (default 16)")
    ap.add_argument("--input", type=int, default=128, help="I (default 128)")
    ap.add_argument("--hidden", type=int, default=256, help="H (default 256)")
    ap.add_argument("--mode", default="fwd,fwdbwd", help="comma-separated: fwd, fwdbwd")
    ap.add_argument("--runs", type=int, default=5, help="timed runs (default 5)")
    ap.add_argument("--warmup", type=int, default=1, help="warm-up runs (default 1)")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if a.runs < 1 or a.layers < 1:
        ap.error("--runs and --layers must be at least 1")

    # OMP_NUM_THREADS only takes effect before torch loads its OpenMP runtime.
    os.environ.setdefault("OMP_NUM_THREADS", str(a.threads))
    import torch

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    t, b, i, h, layers = a.seq, a.batch, a.input, a.hidden, a.layers
    dirs = 2 if a.bidirectional else 1
    print(
        f"torch {torch.__version__} CPU | threads {torch.get_num_threads()} | "
        f"mkldnn {torch.backends.mkldnn.is_available()} | {platform.processor() or platform.machine()}"
    )
    print(f"L = {layers}, D = {dirs}, T = {t}, B = {b}, I = {i}, H = {h}, float32, time-major, "
          f"{a.warmup} warm-up + {a.runs} timed runs (wall)")
    print(f"{'cell':<5} {'mode':<7} {'L':>2} {'D':>2} {'T':>4} {'B':>5} {'I':>5} {'H':>5} "
          f"{'median ms':>10} {'min ms':>10} {'GFLOP/s':>9}")
    for cell in a.cell.split(","):
        cell = cell.strip()
        kinds = {"lstm": (torch.nn.LSTM, 4), "gru": (torch.nn.GRU, 3)}
        if cell not in kinds:
            ap.error(f"--cell: unknown cell {cell!r} (lstm, gru)")
        module, gates = kinds[cell]
        net = module(i, h, num_layers=layers, bidirectional=a.bidirectional, bias=True)
        net = net.float().train()
        x = torch.randn(t, b, i, dtype=torch.float32, requires_grad=True)
        g = torch.randn(t, b, dirs * h, dtype=torch.float32)
        flops_fwd = sum(
            dirs * 2 * t * b * gates * h * ((i if l == 0 else dirs * h) + h) for l in range(layers)
        )
        for mode in a.mode.split(","):
            mode = mode.strip()
            if mode not in ("fwd", "fwdbwd"):
                ap.error(f"--mode: unknown mode {mode!r}")
            times = []
            for k in range(a.warmup + a.runs):
                net.zero_grad(set_to_none=True)
                x.grad = None
                start = time.perf_counter()
                if mode == "fwd":
                    with torch.no_grad():
                        out, _ = net(x)
                else:
                    out, _ = net(x)
                    (out * g).sum().backward()
                elapsed = (time.perf_counter() - start) * 1e3
                if k >= a.warmup:
                    times.append(elapsed)
            med = sorted(times)[len(times) // 2]  # the sweep's median (upper for even N)
            flops = flops_fwd * (3 if mode == "fwdbwd" else 1)
            print(f"{cell:<5} {mode:<7} {layers:>2} {dirs:>2} {t:>4} {b:>5} {i:>5} {h:>5} "
                  f"{med:>10.3f} {min(times):>10.3f} {flops / (med * 1e6):>9.2f}")


if __name__ == "__main__":
    main()
