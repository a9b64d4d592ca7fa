#!/usr/bin/env bash
# Our GPU path against burn's wgpu LSTM/GRU on the same software adapter (lavapipe), side
# by side in one window: ROUNDS alternating rounds of our sweep (wall clock, submit to
# completion, median of RUNS) and burn's benchmark (wall clock with a device sync, median
# of its REPS), then the median of each side's medians and the ratio burn / ours (above 1:
# ours is faster).
#
#   bench/lavapipe_vs_burn.sh                      # ROUNDS=3, LSTM and GRU, S2 forward
#   ROUNDS=5 CELLS="lstm" MODES="fwd train" bench/lavapipe_vs_burn.sh
#
# Needs burn's benchmark built once (../shared/tools/burn_lstm/README.md; about 35 minutes
# cold): BURN defaults to ${TMPDIR:-/tmp}/target-burn/release/burn_bench. Ours: a release
# build of the sweep (built here if missing). S2 = T50 B16 I128 H256, as burn's S2. Both
# run with LP_NUM_THREADS=$THREADS (default: every core) on the default Vulkan adapter.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
RUNS=${RUNS:-5}
CELLS=${CELLS:-"lstm gru"}
MODES=${MODES:-"fwd"}
BURN=${BURN:-${TMPDIR:-/tmp}/target-burn/release/burn_bench}
THREADS=${THREADS:-$(nproc)}
export LP_NUM_THREADS=$THREADS
[[ -x $BURN ]] || { echo "no burn benchmark at $BURN (see ../shared/tools/burn_lstm/README.md)" >&2; exit 1; }

cargo build --release --bench sweep >&2
# shellcheck disable=SC2010
sweep=$(ls -t "${CARGO_TARGET_DIR:-target}"/release/deps/sweep-* | grep -v '\.d$' | head -1)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
: >"$out/times"

# burn's first wgpu run fills its kernel cache: one untimed run of each point first.
for c in $CELLS; do for m in $MODES; do
  REPS=1 MIN_REPS=1 "$BURN" wgpu "$c" S2 "$m" >/dev/null 2>&1 || true
done; done

for r in $(seq "$ROUNDS"); do
  for c in $CELLS; do
    for m in $MODES; do
      echo "round $r $c $m" >&2
      sm=$m
      [[ $m == train ]] && sm=fwdbwd
      "$sweep" --backend gpu --cell "$c" --mode "$sm" --seq 50 --batch 16 --input 128 --hidden 256 \
        --runs "$RUNS" --no-gemm --out "$out/sw" 2>/dev/null |
        awk -v c="$c" -v m="$m" '$1 == c && $3 == "gpu" {print c, m, "ours", $16}' >>"$out/times"
      REPS=$RUNS "$BURN" wgpu "$c" S2 "$m" 2>/dev/null |
        sed -n 's/.*"median_ms":\([0-9.]*\).*/\1/p' | awk -v c="$c" -v m="$m" '{print c, m, "burn", $1}' >>"$out/times"
    done
  done
done

adapter=$("$sweep" --backend gpu --cell rnn --batch 1 --hidden 4 --input 4 --seq 1 --mode fwd --runs 1 \
  --warmup 0 --no-gemm --out "$out/sw" 2>/dev/null | sed -n 's/^adapter: //p')
echo "lavapipe: ours vs burn's wgpu, S2 (T50 B16 I128 H256), $ROUNDS rounds alternating, wall-clock median ms ($(date -u +%F), $(lscpu | sed -n 's/^Model name: *//p'), $THREADS threads)"
echo "adapter: $adapter"
printf '%-5s %-6s %10s %10s %8s\n' cell mode ours burn burn/ours
for c in $CELLS; do
  for m in $MODES; do
    med() { grep "^$c $m $1 " "$out/times" | awk '{print $4}' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
    o=$(med ours)
    b=$(med burn)
    [[ -n $o && -n $b ]] || { printf '%-5s %-6s %10s %10s %8s\n' "$c" "$m" "${o:--}" "${b:--}" -; continue; }
    printf '%-5s %-6s %10.1f %10.1f %8.1f\n' "$c" "$m" "$o" "$b" "$(echo "$b / $o" | bc -l)"
  done
done
