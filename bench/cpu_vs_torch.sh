#!/usr/bin/env bash
# The CPU path against PyTorch CPU, side by side in one window: LSTM and GRU, forward and
# forward+backward, at S2 (T50 B16 I128 H256) and S3 (T100 B64 I256 H512), both with the
# same thread count, alternating ours and PyTorch's ROUNDS times (this machine's speed
# drifts by up to 1.6× within an hour), then the median of each point's medians and the
# ratio ours / PyTorch (below 1: ours is faster).
#
#   bench/cpu_vs_torch.sh                 # ROUNDS=3 THREADS=2 by default
#   ROUNDS=5 THREADS=2 bench/cpu_vs_torch.sh
#
# Needs a release build of the sweep (built here if missing) and PyTorch CPU in a venv
# (../shared/tools/torch-cpu.md; TORCH_PY defaults to the light install's python with its
# CUDA stand-ins on LD_LIBRARY_PATH). Ours: `sweep --backend cpu` (wall time, median of
# RUNS); PyTorch: bench/torch_net.py with one layer, one direction (wall time, median).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
RUNS=${RUNS:-5}
TORCH_PY=${TORCH_PY:-/tmp/torch-venv/bin/python}
export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-/tmp/torch-venv/cudastubs}
export OMP_NUM_THREADS=$THREADS
export RAYON_NUM_THREADS=$THREADS

cargo build --release --bench sweep >&2
sweep=$(ls -t "${CARGO_TARGET_DIR:-target}"/release/deps/sweep-* | grep -v '\.d$' | head -1)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
: >"$out/times"

shapes=("S2 --seq 50 --batch 16 --input 128 --hidden 256" "S3 --seq 100 --batch 64 --input 256 --hidden 512")
for r in $(seq "$ROUNDS"); do
  for sh in "${shapes[@]}"; do
    name=${sh%% *}
    args=${sh#* }
    echo "round $r $name" >&2
    # shellcheck disable=SC2086
    taskset -c 0-$((THREADS - 1)) "$sweep" --backend cpu --cell lstm,gru --mode fwd,fwdbwd $args \
      --runs "$RUNS" --no-gemm --out "$out/sw" 2>/dev/null |
      awk -v s="$name" '$1 ~ /^(lstm|gru)$/ && $3 == "cpu" {print s, $1, $2, "ours", $10}' >>"$out/times"
    # shellcheck disable=SC2086
    "$TORCH_PY" bench/torch_net.py --cell lstm,gru --layers 1 --no-bidirectional $args \
      --runs "$RUNS" --threads "$THREADS" 2>/dev/null |
      awk -v s="$name" '$1 ~ /^(lstm|gru)$/ && $3 ~ /^[0-9]+$/ {print s, $1, $2, "torch", $9}' >>"$out/times"
  done
done

echo "CPU path vs PyTorch CPU, $THREADS threads, $ROUNDS rounds alternating, median ms ($(date -u +%F), $(lscpu | sed -n 's/^Model name: *//p'))"
printf '%-4s %-5s %-7s %10s %10s %7s\n' shape cell mode ours torch ratio
sort -u -k1,3 "$out/times" | awk '{print $1, $2, $3}' | while read -r s c m; do
  med() { grep "^$s $c $m $1 " "$out/times" | awk '{print $5}' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
  o=$(med ours)
  t=$(med torch)
  printf '%-4s %-5s %-7s %10.2f %10.2f %7.2f\n' "$s" "$c" "$m" "$o" "$t" "$(echo "$o / $t" | bc -l)"
done
