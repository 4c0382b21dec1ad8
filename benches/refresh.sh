#!/usr/bin/env bash
# sluice refresh against the baselines, on pgbench data (`pgbench -i -s SCALE --foreign-keys`):
#   (a) psql COPY pgbench_accounts TO STDOUT | psql COPY … FROM STDIN into an identical empty
#       table (created from pre-data: no indexes, like sluice's load)
#   (b) pg_dump | psql of the whole database into a fresh one replacing the previous copy
#   (c) sluice refresh of the whole database, every column kept
#   (d) the same with pgbench_accounts.filler hashed (keyed) and abalance noised
# Prints wall seconds (median of --runs, the four taking turns), peak RSS of sluice, and
# pgbench_accounts rows/s.
#
# Usage: benches/refresh.sh [--scale 50] [--runs 3] [--jobs N]   (--jobs: sluice's, default cores)
# Needs the PostgreSQL 15 server binaries (initdb, pg_ctl, pgbench, pg_dump, psql).
set -euo pipefail

SCALE=50
RUNS=3
JOBS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) SCALE=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --jobs) JOBS=(--jobs "$2"); shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${SLUICE_BENCH_DIR:-/tmp/sluice-refresh-bench}
PORT=${SLUICE_BENCH_PORT:-55633}
# shellcheck source=benches/bench-cluster.sh
source "$ROOT/benches/bench-cluster.sh" "data-s$SCALE"
if [ "$(q -d postgres -c "select count(*) from pg_database where datname = 'bench'")" = 0 ]; then
  echo "initializing pgbench scale $SCALE…" >&2
  q -d postgres -c "create database bench"
  pgbench "${P[@]}" -i -s "$SCALE" --foreign-keys -q bench >/dev/null 2>&1
  q -d bench -c "vacuum analyze"
fi
ROWS=$(q -d bench -c "select count(*) from pgbench_accounts")

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
timed() { # prints "seconds maxrss_kb" of the command
  /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" >/dev/null
  cat "$WORK/time"
}

# (a) one table through two psql processes, into a table made from pre-data.
q -d postgres -c "drop database if exists a_target" -c "create database a_target"
pg_dump "${P[@]}" --schema-only --section=pre-data bench | q -d a_target >/dev/null
run_a() {
  q -d a_target -c "truncate pgbench_accounts"
  timed bash -c "psql -h 127.0.0.1 -p $PORT -U postgres -X -c 'copy pgbench_accounts to stdout' bench | psql -h 127.0.0.1 -p $PORT -U postgres -X -q -c 'copy pgbench_accounts from stdin' a_target" | cut -d' ' -f1
}

# (b) pg_dump | psql into a fresh database that replaces the previous copy (what sluice does:
# the old copy is dropped and a new database created, inside the timing for both).
q -d postgres -c "drop database if exists b_target" -c "create database b_target"
pg_dump "${P[@]}" bench | q -d b_target >/dev/null
run_b() {
  timed bash -c "psql -h 127.0.0.1 -p $PORT -U postgres -X -q -d postgres -c 'drop database if exists b_target' -c 'create database b_target' && pg_dump -h 127.0.0.1 -p $PORT -U postgres bench | psql -h 127.0.0.1 -p $PORT -U postgres -X -q -d b_target" | cut -d' ' -f1
}

# (c) and (d): sluice.
CFG="$WORK/sluice.yaml"
cat >"$CFG" <<YAML
version: 1
environments:
  prod: { protected: true, secrets: { provider: env, prefix: PROD_ } }
  staging: { secrets: { provider: env, prefix: STAGING_ } }
secrets:
  DATABASE_URL: { prod: env://DATABASE_URL, staging: env://DATABASE_URL }
  MASKING_KEY: { prod: env://MASKING_KEY }
refresh:
  keep:
    source: { env: prod, url: "secret:DATABASE_URL" }
    target: { env: staging, url: "secret:DATABASE_URL" }
    same_server: true                # the benchmark copies within one cluster
    masking:
      key: "secret:MASKING_KEY"
      presets: []
      columns: { pgbench_accounts.*: keep, pgbench_branches.*: keep, pgbench_tellers.*: keep, pgbench_history.*: keep }
  masked:
    source: { env: prod, url: "secret:DATABASE_URL" }
    target: { env: staging, url: "secret:DATABASE_URL" }
    same_server: true                # the benchmark copies within one cluster
    masking:
      key: "secret:MASKING_KEY"
      presets: []
      columns:
        pgbench_accounts.*: keep
        pgbench_accounts.filler: hash:32
        pgbench_accounts.abalance: number_noise:10
        pgbench_branches.*: keep
        pgbench_tellers.*: keep
        pgbench_history.*: keep
YAML
export PROD_DATABASE_URL="postgresql://postgres@127.0.0.1:$PORT/bench"
export PROD_MASKING_KEY="benchmark-key-3f9c2a71d8e4b605"
run_sluice() { # plan target_db -> "seconds rss_kb accounts_rows_per_s"
  local plan=$1 db=$2 t rps
  t=$(STAGING_DATABASE_URL="postgresql://postgres@127.0.0.1:$PORT/$db" \
    timed "$SLUICE" --config "$CFG" refresh "$plan" "${JOBS[@]}" --report "$WORK/report.json" 2>>"$WORK/sluice.log")
  rps=$(python3 -c "import json,sys; r=json.load(open(sys.argv[1])); t=[x for x in r['tables'] if x['table']=='public.pgbench_accounts'][0]; print(round(t['rows']/t['seconds']))" "$WORK/report.json")
  echo "$t $rps"
}

# The machine's speed drifts over minutes: the four run in turn, so each median sees the same
# conditions. A first sluice run of each plan (not timed) leaves a previous copy to replace, as
# every night after the first.
run_sluice keep c_target >/dev/null
run_sluice masked d_target >/dev/null
A=(); B=(); C=""; D=""
for _ in $(seq "$RUNS"); do
  A+=("$(run_a)")
  B+=("$(run_b)")
  C+="$(run_sluice keep c_target)"$'\n'
  D+="$(run_sluice masked d_target)"$'\n'
done
C=${C%$'\n'}; D=${D%$'\n'}
a=$(printf '%s\n' "${A[@]}" | median)
b=$(printf '%s\n' "${B[@]}" | median)
c=$(echo "$C" | cut -d' ' -f1 | median)
d=$(echo "$D" | cut -d' ' -f1 | median)
c_rss=$(echo "$C" | cut -d' ' -f2 | sort -n | tail -1)
d_rss=$(echo "$D" | cut -d' ' -f2 | sort -n | tail -1)
d_rps=$(echo "$D" | cut -d' ' -f3 | median)
a_rps=$(python3 -c "print(round($ROWS/$a))")

cat <<EOF
pgbench scale $SCALE ($ROWS accounts), median of $RUNS, $(nproc) cores
(a) psql COPY | psql COPY, pgbench_accounts : ${a}s  ($a_rps rows/s)  runs: ${A[*]}
(b) pg_dump | psql, whole database          : ${b}s  runs: ${B[*]}
(c) sluice refresh, all kept                : ${c}s  (peak RSS $((c_rss / 1024)) MB)  runs: $(echo "$C" | cut -d' ' -f1 | tr '\n' ' ')
(d) sluice refresh, filler hash + noise     : ${d}s  (peak RSS $((d_rss / 1024)) MB; pgbench_accounts $d_rps rows/s = $(python3 -c "print(round(100*$d_rps/$a_rps))")% of (a))  runs: $(echo "$D" | cut -d' ' -f1 | tr '\n' ' ')
EOF
