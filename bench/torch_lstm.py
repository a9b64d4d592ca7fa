"""PyTorch's nn.LSTM / nn.RNN (cuDNN, fp32, TF32 off) on the sweep's grid, for the ratio
against `cargo bench --bench sweep` on the same card. Prints CSV with the same columns.

python3 bench/torch_lstm.py --batch 1,8,32,64,256 --hidden 32,128,256,512,1024 --seq 50
"""
import argparse
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cell", default="lstm,rnn")
    ap.add_argument("--batch", default="1,8,32,64,256")
    ap.add_argument("--hidden", default="32,128,256,512,1024")
    ap.add_argument("--seq", default="50")
    ap.add_argument("--input", type=int, default=None)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.device("cuda")
    print(f"# {torch.cuda.get_device_name(0)} torch {torch.__version__} cudnn {torch.backends.cudnn.version()}")
    print("cell,mode,backend,T,B,I,H,median_ms,min_ms,gflops")
    for cell in a.cell.split(","):
        for t in map(int, a.seq.split(",")):
            for b in map(int, a.batch.split(",")):
                for h in map(int, a.hidden.split(",")):
                    i = a.input or h
                    g = 4 if cell == "lstm" else 1
                    m = (torch.nn.LSTM if cell == "lstm" else torch.nn.RNN)(i, h).to(dev)
                    x = torch.randn(t, b, i, device=dev, requires_grad=True)
                    dh = torch.randn(t, b, h, device=dev)
                    for mode in ("fwd", "fwdbwd"):
                        times = []
                        for k in range(a.warmup + a.runs):
                            start = torch.cuda.Event(enable_timing=True)
                            end = torch.cuda.Event(enable_timing=True)
                            start.record()
                            if mode == "fwd":
                                with torch.no_grad():
                                    y, _ = m(x)
                            else:
                                y, _ = m(x)
                                y.backward(dh)
                            end.record()
                            torch.cuda.synchronize()
                            if k >= a.warmup:
                                times.append(start.elapsed_time(end))
                        times.sort()
                        med = times[len(times) // 2]
                        flops = 2 * t * b * g * h * (i + h) * (3 if mode == "fwdbwd" else 1)
                        print(f"{cell},{mode},cudnn,{t},{b},{i},{h},{med:.4f},{times[0]:.4f},{flops / med / 1e6:.3f}")


if __name__ == "__main__":
    main()
