#!/usr/bin/env bash
# `sluice env up` two ways, on the pgbench subset of benches/subset.sh (branches bid <= 5 with
# their accounts, tellers and history, and every parent they need):
#   streamed  env up --from stream: snapshot, subset closure, masking, COPY, indexes, swap
#   template  refresh --template once, then env up --from template: CREATE DATABASE … TEMPLATE
#             and the swap (the median of 5 clones)
# Prints seconds for each, the template refresh, and the environment's size.
#
# Usage: benches/envs.sh [--scale 50] [--history 1000000]
set -euo pipefail

SCALE=50
HISTORY=1000000
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) SCALE=$2; shift 2 ;;
    --history) HISTORY=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${SLUICE_BENCH_DIR:-/tmp/sluice-refresh-bench}
PORT=${SLUICE_BENCH_PORT:-55635}
# shellcheck source=benches/bench-cluster.sh
source "$ROOT/benches/bench-cluster.sh" "subset-s$SCALE"
# shellcheck source=benches/subset-setup.sh
source "$ROOT/benches/subset-setup.sh"

sl() { "$SLUICE" --config "$CFG" "$@"; }
timed() { /usr/bin/time -f "%e" -o "$WORK/time" "$SLUICE" --config "$CFG" "$@" >/dev/null 2>"$WORK/envs.log"; cat "$WORK/time"; }
median() { python3 -c "import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))" "$@"; }

for e in bench-stream bench-clone; do sl env down "$e" >/dev/null 2>&1 || true; done
sl env up bench-stream --plan subset --from stream >/dev/null 2>&1   # warm the source's cache
streamed=()
for _ in 1 2 3; do streamed+=("$(timed env up bench-stream --plan subset --from stream)"); done
template=$(timed refresh subset --template)
cloned=()
for _ in 1 2 3 4 5; do cloned+=("$(timed env up bench-clone --plan subset --from template)"); done
size=$(q -d postgres -c "select pg_size_pretty(pg_database_size('bench-clone'))")
rows=$(psql "${P[@]}" -X -q -At -d bench-clone -c "select (select count(*) from pgbench_accounts) + (select count(*) from pgbench_history)
  + (select count(*) from pgbench_tellers) + (select count(*) from pgbench_branches)")
for e in bench-stream bench-clone; do sl env down "$e" >/dev/null; done

cat <<OUT
pgbench scale $SCALE + $HISTORY history rows; env = subset branches bid <= 5 with children ($rows rows, $size); $(nproc) cores
env up, streamed      : $(median "${streamed[@]}") s (median of 3: ${streamed[*]})
refresh --template    : $template s (once, e.g. nightly)
env up, from template : $(median "${cloned[@]}") s (median of 5: ${cloned[*]})
OUT
