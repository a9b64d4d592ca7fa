#!/usr/bin/env bash
# bench/device.sh: wgpu-rnn's sweep against PyTorch's cuDNN LSTM/GRU on a lent NVIDIA GPU.
#
# It runs ON the device machine, through the device tool's `run`, in the repository root
# there. What it writes under $OUT comes back: six files, below the tool's limit of 8.
# The whole script stays under 8 minutes: DEVICE_BUDGET_S (420 s by default) caps it, and
# every part runs under its own `timeout`, clamped to what is left of that budget. A part
# that fails or times out is recorded, and the parts after it still run.
#
# What it does
#   1. Unpacks the Vulkan loader from .gl/*.deb (as /work/.library/device/README.md says),
#      falls back to VK_DRIVER_FILES=/usr/local/nvidia/... when no NVIDIA ICD is
#      registered, then probes the adapter with a tiny sweep point.
#   2. Runs the prebuilt sweep, bench/bin/sweep, with --backend gpu (every point is still
#      checked against the CPU path once):
#        - calibration: tanh RNN, B=1, H=4, T=1000 and T=2000, forward. The difference
#          divided by 1000 gives the cost of one step dispatch (dispatch + barrier + a
#          4-iteration step). MODEL.md assumes 2 µs + ~1 µs for it.
#        - LSTM and GRU, fwd and fwdbwd, at DeepBench's LSTM shapes (H=256 N=16 T=150,
#          H=512 N=16 T=25, H=1024 N=64 T=25, with I = H) and at S3 (T100 B64 I256 H512),
#          plus the LSTM at S3 with I = 512 (the issue's estimate). The S3 runs also time
#          the GEMM alone at two shapes: the forward projection, and a dW_hh-sized one.
#        - these run in the adapter's default step variant (split8 on a GPU, see
#          src/gpu/variant.rs); S3 runs once more in the unit variant (WGPU_RNN_STEP=unit)
#          and the report sets the two side by side.
#   3. Times PyTorch's nn.LSTM / nn.GRU on cuda (cuDNN, float32, TF32 off) at the same
#      shapes: forward in eval mode under no_grad (like the sweep's inference forward),
#      and forward + backward(dh) in train mode, with CUDA events, the median over RUNS
#      after WARMUP. The script is embedded below because bench/torch_lstm.py has no GRU
#      and no per-shape input size, and bench/torch_net.py is CPU only. It also measures
#      two ceilings: a device-to-device copy, and an fp32 cuBLAS GEMM (TF32 off).
#   4. Writes $OUT/RESULTS.md: the carried bench/RESULTS.md with a new dated section
#      appended. The section has the card and driver (nvidia-smi), the sweep's adapter
#      line, the calibration, and one table per shape: ours against cuDNN in ms, the
#      ratio, and MODEL.md's prediction for today's kernels.
#
# Files that come back: RESULTS.md, sweep.csv (every sweep point), torch.csv (cuDNN
# points, the same columns), sweep.log, torch.log and setup.log (Vulkan setup,
# nvidia-smi, the probe, and each part's exit status).
#
# Preparation, on THIS machine, before the call (no device time):
#   mkdir -p .git/info && printf '%s\n' /.gl/ /bench/bin/ >> .git/info/exclude
#   # (.gitignore already ignores /.gl/ and /.whl/; bench/bin/ must be ignored too,
#   #  or the binary travels as an untracked file and shows in `git status`.)
#   # The Vulkan loader as .debs (the device README's recipe), once:
#   mkdir -p .gl /tmp/amd64/partial
#   o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
#   apt-get $o update
#   (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
#   # The sweep, built here (x86-64; the device image lists no Rust toolchain) and carried:
#   cargo build --release --bench sweep      # or: cargo bench --bench sweep --no-run
#   mkdir -p bench/bin
#   cp "$(ls -t target/release/deps/sweep-* | grep -v '\.d$' | head -n 1)" bench/bin/sweep
#   strip bench/bin/sweep                    # about 10 MB before; the carry limit is 64 MiB
#   { git rev-parse HEAD; git status --short; } > bench/bin/COMMIT
#   bash -n bench/device.sh
# Then ONE call of the device tool (device time is 15 minutes per session, start included):
#   run(command="bash bench/device.sh", carry=[".gl", "bench/bin"], timeout_s=540)
# Afterwards, here: cp <files_at>/RESULTS.md bench/RESULTS.md (it is the old file plus
# the new section), and review it before committing.
#
# PyTorch: KINDS.md says the device image's python3 (3.12) has torch 2.11 with CUDA 13 and
# cuDNN, so nothing needs to travel. If a later image lacks it, download wheels here
# into .whl/ (the device README gives the `pip download --python-version 3.12 --platform
# manylinux...` line; torch also needs its nvidia-* dependencies, which are large) and add
# ".whl" to carry; this script installs them into /tmp/site when `import torch` fails.
#
# Knobs (environment): DEVICE_BUDGET_S=420  RUNS=10  WARMUP=3  TORCH_RUNS=20
#   TORCH_WARMUP=5  SWEEP=bench/bin/sweep  PYTHON=python3  OUT=(set by the tool;
#   target/device-out when run by hand).
#
# The machine lent here is an H200 (the same SMs, clocks and FP32 rate as the H100 SXM
# that MODEL.md models, with faster HBM). Nothing in this script changes the card's
# settings.

set -euo pipefail
export PYTHONUNBUFFERED=1
export RUST_BACKTRACE=1

T0=$SECONDS
BUDGET=${DEVICE_BUDGET_S:-420}
RESERVE=40 # seconds kept for the closing nvidia-smi and the report
OUT=${OUT:-target/device-out}
SWEEP=${SWEEP:-bench/bin/sweep}
PY=${PYTHON:-python3}
RUNS=${RUNS:-10}
WARMUP=${WARMUP:-3}
TORCH_RUNS=${TORCH_RUNS:-20}
TORCH_WARMUP=${TORCH_WARMUP:-5}
WORK=$(mktemp -d /tmp/wgpu-rnn-device.XXXXXX)
mkdir -p "$OUT"
SETUP_LOG=$OUT/setup.log
SWEEP_LOG=$OUT/sweep.log
TORCH_LOG=$OUT/torch.log
: >"$SETUP_LOG"
: >"$SWEEP_LOG"
: >"$TORCH_LOG"
STATUS=()
HOLD=0 # seconds `limited` also leaves for the parts after the current one

# The shapes: name|cells|T|B|I|H|extra sweep flags. The report's titles and MODEL.md's
# predictions are keyed by (T, B, I, H), so keep them in step with report.py below.
SHAPES=(
  "deepbench-h256|lstm,gru|150|16|256|256|--no-gemm"
  "deepbench-h512|lstm,gru|25|16|512|512|--no-gemm"
  "deepbench-h1024|lstm,gru|25|64|1024|1024|--no-gemm"
  "s3|lstm,gru|100|64|256|512|--gemm 6400,2048,256"
  "s3-i512|lstm|100|64|512|512|--gemm 2048,512,6400"
)

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$SETUP_LOG"; }

left() { echo $((BUDGET - (SECONDS - T0))); }

# limited LIMIT LABEL LOGFILE CMD...: runs CMD under `timeout`, clamped to what is left of
# the budget minus RESERVE and HOLD, appending its output to LOGFILE. It records the exit
# status and never fails itself.
limited() {
  local limit=$1 label=$2 logfile=$3
  shift 3
  local avail=$(($(left) - RESERVE - HOLD))
  if ((avail < 10)); then
    STATUS+=("$label: skipped (budget spent)")
    log "SKIP $label: budget spent"
    return 0
  fi
  ((limit > avail)) && limit=$avail
  log "RUN  $label (timeout ${limit}s, $(left)s of the budget left)"
  printf '\n### %s (timeout %ss)\n' "$label" "$limit" >>"$logfile"
  local rc=0 start=$SECONDS
  timeout -k 5 "$limit" "$@" 2>&1 | tee -a "$logfile" || rc=$?
  local took=$((SECONDS - start))
  case $rc in
    0) STATUS+=("$label: ok (${took}s)") ;;
    124 | 137) STATUS+=("$label: TIMED OUT after ${took}s (limit ${limit}s)") ;;
    *) STATUS+=("$label: FAILED rc=$rc (${took}s)") ;;
  esac
  log "DONE $label rc=$rc (${took}s)"
  return 0
}

# ---------------------------------------------------------------------------------------
# 1. Vulkan loader, driver, adapter
# ---------------------------------------------------------------------------------------
setup_vulkan() {
  local n=0 f
  for f in .gl/*.deb; do
    [[ -e $f ]] || continue
    if dpkg -x "$f" /; then n=$((n + 1)); else log "dpkg -x $f failed"; fi
  done
  ldconfig || log "ldconfig failed"
  log "unpacked $n .deb file(s) from .gl/"
  if ldconfig -p | grep -q 'libvulkan\.so\.1'; then
    log "libvulkan: $(ldconfig -p | grep 'libvulkan\.so\.1' | head -n 1 | sed 's/^[[:space:]]*//')"
  else
    log "WARNING: no libvulkan.so.1: carry .gl (see this script's header)"
  fi
  local d found=""
  for d in /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/share/vulkan/icd.d; do
    compgen -G "$d/nvidia*.json" >/dev/null && found="$found $d"
  done
  if [[ -z $found ]]; then
    use_nvidia_icd "no NVIDIA ICD registered in the standard folders"
  else
    log "NVIDIA ICD found in:$found"
  fi
}

use_nvidia_icd() {
  local icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  local egl=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  if [[ -f $icd ]]; then
    export VK_DRIVER_FILES=$icd
    [[ -f $egl ]] && export __EGL_VENDOR_LIBRARY_FILENAMES=$egl
    log "$1: VK_DRIVER_FILES=$icd"
  else
    log "$1, and $icd is missing"
  fi
}

{
  echo "# date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "# host: $(uname -srm)"
  echo "# nvidia-smi before:"
  timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.mem,temperature.gpu,power.draw,power.limit \
    --format=csv 2>&1 || echo "nvidia-smi failed"
  [[ -f bench/bin/COMMIT ]] && { echo "# binary built from:"; sed 's/^/#   /' bench/bin/COMMIT; }
} >>"$SETUP_LOG" 2>&1 || true

setup_vulkan || log "setup_vulkan failed"
export WGPU_BACKEND=${WGPU_BACKEND:-vulkan}
# The crate picks the first adapter whose name contains this (Context::new).
export WGPU_ADAPTER_NAME=${WGPU_ADAPTER_NAME:-nvidia}

HAVE_SWEEP=0
if [[ -x $SWEEP ]]; then
  HAVE_SWEEP=1
elif [[ -f $SWEEP ]]; then
  chmod +x "$SWEEP" 2>/dev/null && HAVE_SWEEP=1
fi
if ((HAVE_SWEEP == 0)); then
  log "MISSING $SWEEP: build it here and carry bench/bin (see the header); skipping our side"
  STATUS+=("sweep: missing $SWEEP")
fi

probe() {
  timeout -k 5 60 "$SWEEP" --backend gpu --cell rnn --batch 1 --hidden 4 --input 4 --seq 4 \
    --mode fwd --runs 1 --warmup 0 --no-gemm --out "$WORK/probe" >"$WORK/probe.log" 2>&1
}
if ((HAVE_SWEEP)); then
  rc=0
  probe || rc=$?
  if { ((rc != 0)) || ! grep -qi '^adapter:.*nvidia' "$WORK/probe.log"; } && [[ -z ${VK_DRIVER_FILES:-} ]]; then
    log "probe rc=$rc without an NVIDIA adapter; retrying with the driver's own ICD"
    sed 's/^/  probe: /' "$WORK/probe.log" >>"$SETUP_LOG"
    use_nvidia_icd "probe retry"
    rc=0
    probe || rc=$?
  fi
  sed 's/^/  probe: /' "$WORK/probe.log" >>"$SETUP_LOG"
  if ((rc != 0)); then
    log "probe FAILED rc=$rc: our side will likely fail too (see probe lines above)"
    STATUS+=("probe: FAILED rc=$rc")
  else
    log "probe ok: $(grep -m1 '^adapter:' "$WORK/probe.log" || echo 'no adapter line')"
    STATUS+=("probe: ok")
  fi
fi

# Is PyTorch there? (Checked now so that the sweep can leave time for it.)
HAVE_TORCH=0
if "$PY" -c 'import torch' >/dev/null 2>&1; then
  HAVE_TORCH=1
elif compgen -G '.whl/*.whl' >/dev/null && (($(left) - RESERVE - 60 > 20)); then
  log "import torch failed; installing the carried wheels from .whl/ into /tmp/site"
  if timeout $(($(left) - RESERVE - 60)) "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target /tmp/site .whl/*.whl >>"$TORCH_LOG" 2>&1; then
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
    "$PY" -c 'import torch' >/dev/null 2>&1 && HAVE_TORCH=1
  fi
fi

# ---------------------------------------------------------------------------------------
# 2. Our sweep
# ---------------------------------------------------------------------------------------
CSVS=()
# While the sweep runs, keep 90 s for the cuDNN part (expected: under a minute).
((HAVE_TORCH)) && HOLD=90
if ((HAVE_SWEEP)); then
  limited 60 "sweep calibration (rnn B1 H4 T1000,2000)" "$SWEEP_LOG" \
    "$SWEEP" --backend gpu --cell rnn --batch 1 --hidden 4 --input 4 --seq 1000,2000 \
    --mode fwd --runs "$RUNS" --warmup "$WARMUP" --no-gemm --out "$WORK/sweep-calib"
  CSVS+=("$WORK/sweep-calib/sweep.csv")
  for s in "${SHAPES[@]}"; do
    IFS='|' read -r name cells t b i h extra <<<"$s"
    # $extra is deliberately split into words (flag and value).
    # shellcheck disable=SC2086
    limited 75 "sweep $name ($cells T$t B$b I$i H$h)" "$SWEEP_LOG" \
      "$SWEEP" --backend gpu --cell "$cells" --batch "$b" --hidden "$h" --input "$i" \
      --seq "$t" --mode fwd,fwdbwd --runs "$RUNS" --warmup "$WARMUP" $extra \
      --out "$WORK/sweep-$name"
    CSVS+=("$WORK/sweep-$name/sweep.csv")
  done
  # S3 again in the unit step variant (one invocation per hidden unit, the kernels CPU
  # adapters get), beside the adapter's default split variant above; its own CSV.
  limited 60 "sweep s3, unit step variant" "$SWEEP_LOG" \
    env WGPU_RNN_STEP=unit "$SWEEP" --backend gpu --cell lstm,gru --batch 64 --hidden 512 \
    --input 256 --seq 100 --mode fwd,fwdbwd --runs "$RUNS" --warmup "$WARMUP" --no-gemm \
    --out "$WORK/sweep-unit"
fi
HOLD=0
# One CSV: the header once, then every run's rows.
first=1
for f in "${CSVS[@]}"; do
  [[ -s $f ]] || continue
  if ((first)); then cat "$f"; first=0; else tail -n +2 "$f"; fi
done >"$OUT/sweep.csv" || true
lines=$(wc -l <"$OUT/sweep.csv")
log "sweep.csv: $((lines > 0 ? lines - 1 : 0)) rows"

# ---------------------------------------------------------------------------------------
# 3. PyTorch cuDNN
# ---------------------------------------------------------------------------------------
cat >"$WORK/torch_rnn.py" <<'PY'
"""nn.LSTM / nn.GRU on cuda (cuDNN, float32, TF32 off), timed with CUDA events like the
sweep's points: 'fwd' is eval() under no_grad (cuDNN's inference forward), 'fwdbwd' is
train(), y, _ = m(x), y.backward(dh) (dx and every parameter's gradient). Writes a CSV
with the sweep's columns (backend cudnn, timing cuda-events)."""
import argparse
import sys

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", action="append", required=True, help="CELLS:T:B:I:H")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--out", required=True)
    ap.add_argument("--ceilings", action="store_true")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print("error: torch sees no CUDA device", flush=True)
        sys.exit(2)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    torch.manual_seed(0)
    dev = torch.device("cuda")
    p = torch.cuda.get_device_properties(0)
    print(f"# torch {torch.__version__} | CUDA {torch.version.cuda} | cuDNN "
          f"{torch.backends.cudnn.version()} (enabled {torch.backends.cudnn.enabled}) | "
          f"{p.name}, {p.multi_processor_count} SMs | fp32, TF32 off | median of "
          f"{a.runs} after {a.warmup} warm-up", flush=True)

    def timed(fn, prep=None):
        for _ in range(a.warmup):
            if prep:
                prep()
            fn()
        torch.cuda.synchronize()
        ts = []
        for _ in range(a.runs):
            if prep:
                prep()
            s = torch.cuda.Event(enable_timing=True)
            e = torch.cuda.Event(enable_timing=True)
            s.record()
            fn()
            e.record()
            torch.cuda.synchronize()
            ts.append(s.elapsed_time(e))
        ts.sort()
        return ts[len(ts) // 2], ts[0]  # the sweep's median (upper for an even count)

    if a.ceilings:
        n = 1 << 28  # 1 GiB of float32
        src = torch.randn(n, device=dev)
        dst = torch.empty_like(src)
        med, _ = timed(lambda: dst.copy_(src))
        print(f"# ceiling: device-to-device copy {2 * 4 * n / med / 1e9:.0f} GB/s "
              f"(read + write, 1 GiB, {med:.3f} ms)", flush=True)
        del src, dst
        for m_, n_, k_ in ((8192, 8192, 8192), (6400, 2048, 256), (2048, 512, 6400)):
            x = torch.randn(m_, k_, device=dev)
            y = torch.randn(k_, n_, device=dev)
            med, _ = timed(lambda: torch.mm(x, y))
            print(f"# ceiling: cuBLAS fp32 GEMM {m_}x{n_}x{k_}: {2 * m_ * n_ * k_ / med / 1e9:.0f} "
                  f"GFLOP/s ({med:.3f} ms)", flush=True)
        torch.cuda.empty_cache()

    rows = ["cell,mode,backend,L,D,T,B,I,H,median_ms,min_ms,gflops,host_us_per_step,max_rel_err,timing"]
    for spec in a.shape:
        cells, t, b, i, h = spec.split(":")
        t, b, i, h = int(t), int(b), int(i), int(h)
        for cell in cells.split(","):
            kind, g = {"lstm": (torch.nn.LSTM, 4), "gru": (torch.nn.GRU, 3)}[cell]
            m = kind(i, h).to(dev).float()
            x = torch.randn(t, b, i, device=dev, requires_grad=True)
            dh = torch.randn(t, b, h, device=dev)
            ok = torch.backends.cudnn.is_acceptable(x)
            for mode in ("fwd", "fwdbwd"):
                if mode == "fwd":
                    m.eval()

                    def fn():
                        with torch.no_grad():
                            m(x)

                    prep = None
                else:
                    m.train()

                    def fn():
                        y, _ = m(x)
                        y.backward(dh)

                    def prep():
                        m.zero_grad(set_to_none=True)
                        x.grad = None

                try:
                    med, mn = timed(fn, prep)
                except Exception as e:  # keep the other points
                    print(f"{cell} {mode} T{t} B{b} I{i} H{h}: {e}", flush=True)
                    continue
                flops = 2 * t * b * g * h * (i + h) * (3 if mode == "fwdbwd" else 1)
                rows.append(f"{cell},{mode},cudnn,1,1,{t},{b},{i},{h},{med:.4f},{mn:.4f},"
                            f"{flops / med / 1e6:.3f},,,cuda-events")
                print(f"{cell:<4} {mode:<6} T={t:<4} B={b:<3} I={i:<5} H={h:<5} median {med:8.3f} ms "
                      f"min {mn:8.3f} ms {flops / med / 1e6:9.1f} GFLOP/s cudnn-acceptable={ok}",
                      flush=True)
                with open(a.out, "w") as f:  # rewritten after each point: a timeout keeps the rest
                    f.write("\n".join(rows) + "\n")
            del m, x, dh
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
PY

if ((HAVE_TORCH)); then
  targs=()
  for s in "${SHAPES[@]}"; do
    IFS='|' read -r name cells t b i h extra <<<"$s"
    targs+=(--shape "$cells:$t:$b:$i:$h")
  done
  limited 150 "cudnn ($PY, torch)" "$TORCH_LOG" \
    "$PY" "$WORK/torch_rnn.py" --out "$OUT/torch.csv" --runs "$TORCH_RUNS" \
    --warmup "$TORCH_WARMUP" --ceilings "${targs[@]}"
else
  log "no PyTorch for $PY (and no .whl/ to install): skipping cuDNN; see the header"
  STATUS+=("cudnn: skipped, no torch")
fi
[[ -f $OUT/torch.csv ]] || : >"$OUT/torch.csv"

{
  echo "# nvidia-smi after:"
  timeout 10 nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu,power.draw \
    --format=csv 2>&1 || echo "nvidia-smi failed"
} >>"$SETUP_LOG" 2>&1 || true

# ---------------------------------------------------------------------------------------
# 4. The report
# ---------------------------------------------------------------------------------------
cat >"$WORK/report.py" <<'PY'
"""Writes RESULTS.md: the carried bench/RESULTS.md plus a section for this run."""
import csv
import os
import re
import sys
import time

out, base, sweep_csv, torch_csv, sweep_log, torch_log, setup_log, status_file, unit_csv = sys.argv[1:10]

# (T, B, I, H) -> title, and MODEL.md's estimates in ms: today's kernels (the GRU is
# padded to the LSTM's four slots on the device, so the same), and cuDNN on an H100
# (DeepBench V100 fp32 / 4.26 plus the input-side GEMMs; the GRU at 0.8x the LSTM).
SHAPES = {
    (150, 16, 256, 256): "DeepBench LSTM H=256 N=16 T=150 (I = H)",
    (25, 16, 512, 512): "DeepBench LSTM H=512 N=16 T=25 (I = H)",
    (25, 64, 1024, 1024): "DeepBench LSTM H=1024 N=64 T=25 (I = H)",
    (100, 64, 256, 512): "S3: T=100 B=64 I=256 H=512",
    (100, 64, 512, 512): "S3 with I=512 (the issue's estimate)",
}
MODEL_TODAY = {  # (fwd, fwdbwd), the unit kernels with the two-pass db sum
    (150, 16, 256, 256): (2.74, 6.12),
    (25, 16, 512, 512): (0.86, 2.02),
    (25, 64, 1024, 1024): (2.14, 5.60),
    (100, 64, 256, 512): (3.54, 8.49),
    (100, 64, 512, 512): (3.81, 9.09),
}
MODEL_CUDNN = {  # LSTM (fwd, fwdbwd)
    (150, 16, 256, 256): (1.10, 2.40),
    (25, 16, 512, 512): (0.28, 0.58),
    (25, 64, 1024, 1024): (0.85, 2.28),
    (100, 64, 256, 512): (1.43, 3.35),
    (100, 64, 512, 512): (1.59, 3.85),
}


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def rows(path):
    text = read(path)
    if not text.strip():
        return []
    return list(csv.DictReader(line for line in text.splitlines() if line and not line.startswith("#")))


def key(r):
    return (r["cell"], r["mode"], int(r["T"]), int(r["B"]), int(r["I"]), int(r["H"]))


ours = {key(r): r for r in rows(sweep_csv) if r.get("backend") == "gpu"}
theirs = {key(r): r for r in rows(torch_csv)}
slog, tlog, setup = read(sweep_log), read(torch_log), read(setup_log)

card = "unknown card"
m = re.search(r"^name, driver_version.*\n(.+)$", setup, re.M)
if m:
    card = m.group(1).strip()
adapter = next((l for l in (slog + "\n" + setup).splitlines() if "adapter:" in l), "no adapter line")
adapter = adapter.split("adapter:", 1)[1].strip() if "adapter:" in adapter else adapter
torch_head = next((l[2:] for l in tlog.splitlines() if l.startswith("# torch")), "PyTorch did not run")
commit = next((l.strip("# ").strip() for l in setup.splitlines() if l.startswith("#   ")), "unknown")
gemms = sorted(set(l.strip() for l in slog.splitlines() if l.startswith("gemm ")))
ceilings = [l[2:].strip() for l in tlog.splitlines() if l.startswith("# ceiling")]
status = [l for l in read(status_file).splitlines() if l.strip()]


def f(x, d=2):
    return f"{float(x):.{d}f}"


md = []
md.append(f"\n## {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {card.split(',')[0]} (bench/device.sh)\n")
md.append(f"- Card (nvidia-smi): `{card}`")
md.append(f"- Ours: `{adapter}`; the binary was built from `{commit}`; timed by the sweep's GPU timestamps "
          "(the sum of each call's compute-pass spans: the step dispatches, GEMMs and the barriers between "
          "them, but not host recording or the gap between the forward and backward submissions).")
md.append(f"- cuDNN: `{torch_head}`; CUDA events around the module call (and the backward), "
          "so launch gaps count.")
md.append("- GFLOP/s use the sweep's formula on both sides (forward `2·T·B·G·H·(I+H)`, forward+backward 3× "
          "that, G = 4 LSTM, 3 GRU, although our GRU pads to four slots). Ratio = ours / cuDNN "
          "(below 1: we are faster). \"Model\" = bench/MODEL.md's estimate for today's kernels on an H100.")
calib = {int(r["T"]): float(r["median_ms"]) for r in rows(sweep_csv)
         if r.get("cell") == "rnn" and r.get("H") == "4" and r.get("B") == "1" and r.get("mode") == "fwd"}
if 1000 in calib and 2000 in calib:
    per = (calib[2000] - calib[1000]) / 1000 * 1000
    md.append(f"- Per-step floor (tanh RNN, B=1, H=4, forward): T=1000 {calib[1000]:.3f} ms, T=2000 "
              f"{calib[2000]:.3f} ms, so **{per:.2f} µs per step dispatch** (dispatch, barrier and a "
              "4-iteration step). MODEL.md assumes D = 2 µs plus about 1 µs per step.")
for g in gemms:
    md.append(f"- GEMM alone (gemm.wgsl): `{g}`")
for c in ceilings:
    md.append(f"- PyTorch {c}")
md.append("")

summary = []
for shape, title in SHAPES.items():
    t, b, i, h = shape
    keys = [k for k in set(ours) | set(theirs) if k[2:] == shape]
    if not keys:
        continue
    md.append(f"### {title}\n")
    md.append("| cell | mode | ours ms (median / min) | ours wall ms | ours GFLOP/s | cuDNN ms (median / min) "
              "| cuDNN GFLOP/s | ours (wall) / cuDNN | model: ours / cuDNN ms | max rel err vs CPU |")
    md.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for k in sorted(keys, key=lambda k: (k[0] != "lstm", k[0], k[1] != "fwd")):
        cell, mode = k[0], k[1]
        o, c = ours.get(k), theirs.get(k)
        idx = 0 if mode == "fwd" else 1
        mc = MODEL_CUDNN[shape][idx] * (0.8 if cell == "gru" else 1.0)
        model = f"{MODEL_TODAY[shape][idx]:.2f} / {mc:.2f}"
        ratio = "-"
        # Side by side on wall clock (submit to completion), as the peer's timing is; the
        # sweep's median is the summed GPU timestamps where the adapter has them.
        wall = (o.get("wall_ms") or o["median_ms"]) if o else None
        if o and c and float(c["median_ms"]) > 0:
            ratio = f"**{float(wall) / float(c['median_ms']):.2f}**"
            summary.append((title, cell, mode, float(wall), float(c["median_ms"])))
        md.append(
            f"| {cell} | {mode} "
            f"| {(f(o['median_ms'], 3) + ' / ' + f(o['min_ms'], 3)) if o else 'failed'} "
            f"| {f(wall, 3) if o else '-'} "
            f"| {f(o['gflops'], 0) if o else '-'} "
            f"| {(f(c['median_ms'], 3) + ' / ' + f(c['min_ms'], 3)) if c else 'failed'} "
            f"| {f(c['gflops'], 0) if c else '-'} | {ratio} | {model} "
            f"| {(o.get('max_rel_err') or '-') if o else '-'} |")
    md.append("")

if summary:
    md.append("### Summary: ours (wall) / cuDNN (median ms)\n")
    md.append("| shape | cell | mode | ours wall ms | cuDNN ms | ratio |")
    md.append("| --- | --- | --- | ---: | ---: | ---: |")
    for title, cell, mode, o, c in summary:
        md.append(f"| {title} | {cell} | {mode} | {o:.3f} | {c:.3f} | {o / c:.2f} |")
    md.append("")
unit = {key(r): r for r in rows(unit_csv) if r.get("backend") == "gpu"}
if unit:
    md.append("### S3: the two step variants (wall ms)\n")
    md.append("| cell | mode | split (default) | unit | unit / split |")
    md.append("| --- | --- | ---: | ---: | ---: |")
    for k in sorted(unit):
        u, o = unit[k], ours.get(k)
        uw = float(u.get("wall_ms") or u["median_ms"])
        ow = float(o.get("wall_ms") or o["median_ms"]) if o else None
        md.append(f"| {k[0]} | {k[1]} | {f(ow, 3) if ow else '-'} | {uw:.3f} | {f(uw / ow) if ow else '-'} |")
    md.append("")
md.append("Parts of the run (exit status, seconds):\n")
md.extend(f"- {s}" for s in status)
md.append("\nRaw numbers: sweep.csv, torch.csv, sweep.log, torch.log and setup.log from the same run.\n")

text = read(base).rstrip("\n") + "\n" + "\n".join(md)
with open(out, "w") as fh:
    fh.write(text)
print("\n".join(md))
PY

STATUS+=("total so far: $((SECONDS - T0))s of ${BUDGET}s")
printf '%s\n' "${STATUS[@]}" >"$WORK/status.txt"
printf '%s\n' "${STATUS[@]}" >>"$SETUP_LOG"
rc=0
timeout -k 5 25 "$PY" "$WORK/report.py" "$OUT/RESULTS.md" bench/RESULTS.md "$OUT/sweep.csv" \
  "$OUT/torch.csv" "$SWEEP_LOG" "$TORCH_LOG" "$SETUP_LOG" "$WORK/status.txt" \
  "$WORK/sweep-unit/sweep.csv" || rc=$?
if ((rc != 0)) || [[ ! -s $OUT/RESULTS.md ]]; then
  # No Python for the report: the raw CSVs under a dated heading instead.
  {
    cat bench/RESULTS.md 2>/dev/null || true
    printf '\n## %s (bench/device.sh; report.py failed, rc=%s: raw CSVs)\n\n' \
      "$(date -u '+%Y-%m-%d %H:%M UTC')" "$rc"
    grep -m1 -A1 '^name, driver_version' "$SETUP_LOG" || true
    grep -m1 '^adapter:' "$SWEEP_LOG" || true
    printf '\n```\n'
    cat "$OUT/sweep.csv" "$OUT/torch.csv"
    printf '```\n\n'
    printf -- '- %s\n' "${STATUS[@]}"
  } >"$OUT/RESULTS.md"
fi
log "finished in $((SECONDS - T0))s; files in $OUT: $(cd "$OUT" && echo *)"
rm -rf "$WORK"
exit 0
