#!/usr/bin/env bash
# Subsetting against its physical limit, on pgbench data plus history rows that point into other
# branches:
#   sluice   `sluice refresh` of the subset: roots pgbench_branches WHERE bid <= 5, children
#            accounts, tellers and history (history then pulls its other-branch parents in)
#   by hand  the same row set, computed by hand-written SQL, moved by psql COPY (SELECT …) |
#            psql COPY … FROM STDIN into a schema-only database (no closure work at all)
# Prints rows, seconds, rows/s, key-set bytes and peak RSS; then the plan time of a generated
# 200-table schema (`sluice refresh --dry-run`: connect, catalog, coverage, subset planning).
#
# Usage: benches/subset.sh [--scale 50] [--history 1000000]
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
"$SLUICE" --config "$CFG" refresh subset >/dev/null 2>&1   # warm: the next run swaps as usual
/usr/bin/time -f "%e %M" -o "$WORK/time" "$SLUICE" --config "$CFG" refresh subset \
  --report "$WORK/subset-report.json" >/dev/null 2>"$WORK/subset.log"
read -r s_secs s_rss <"$WORK/time"
read -r s_rows s_keys < <(python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(r['subset']['rows'], r['subset']['key_bytes'])" "$WORK/subset-report.json")

# The same rows by hand-written SQL.
H="(bid <= 5 or aid in (select aid from pgbench_accounts where bid <= 5) or tid in (select tid from pgbench_tellers where bid <= 5))"
HIST="select * from pgbench_history where $H"
ACC="select * from pgbench_accounts where bid <= 5 or aid in (select aid from pgbench_history where $H)"
TEL="select * from pgbench_tellers where bid <= 5 or tid in (select tid from pgbench_history where $H)"
BR="select * from pgbench_branches where bid <= 5 or bid in (select bid from pgbench_history where $H)
      or bid in (select bid from pgbench_accounts where aid in (select aid from pgbench_history where $H))
      or bid in (select bid from pgbench_tellers where tid in (select tid from pgbench_history where $H))"
q -d postgres -c "drop database if exists hand_target" -c "create database hand_target"
pg_dump "${P[@]}" --schema-only --section=pre-data bench | q -d hand_target >/dev/null
# Enough work_mem that every IN (subquery) is hashed, as anyone hand-tuning this would set.
export PGOPTIONS="-c work_mem=512MB"
start=$(date +%s.%N)
h_rows=0
for pair in "pgbench_history|$HIST" "pgbench_accounts|$ACC" "pgbench_tellers|$TEL" "pgbench_branches|$BR"; do
  t=${pair%%|*}; sql=${pair#*|}
  psql "${P[@]}" -X -q -d bench -c "copy ($sql) to stdout" | psql "${P[@]}" -X -q -d hand_target -c "copy $t from stdin"
  h_rows=$((h_rows + $(q -d hand_target -c "select count(*) from $t")))
done
h_secs=$(python3 -c "import time,sys; print(round(time.time() - float(sys.argv[1]), 2))" "$start")
unset PGOPTIONS

# Planning a generated 200-table schema.
q -d postgres -c "drop database if exists wide" -c "create database wide"
python3 - "$WORK/wide.sql" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(200):
        parent = f", parent_id int references t{(i - 1) // 2}" if i else ""
        f.write(f"create table t{i} (id int primary key, name text, email text, amount numeric, at date{parent});\n")
PY
q -d wide -f "$WORK/wide.sql" >/dev/null
cat >"$WORK/wide.yaml" <<YAML
version: 1
environments:
  prod: { protected: true, secrets: { provider: env, prefix: PROD_ } }
  staging: { secrets: { provider: env, prefix: STAGING_ } }
secrets:
  DATABASE_URL: { prod: env://DATABASE_URL, staging: env://DATABASE_URL }
  MASKING_KEY: { prod: env://MASKING_KEY }
refresh:
  wide:
    source: { env: prod, url: "secret:DATABASE_URL" }
    target: { env: staging, url: "secret:DATABASE_URL" }
    same_server: true                # the benchmark copies within one cluster
    subset:
      roots: [{ table: t0, where: "id < 10" }]
      children: all
      depth: 8
    masking: { key: "secret:MASKING_KEY", unclassified: warn }
YAML
PROD_DATABASE_URL="postgresql://postgres@127.0.0.1:$PORT/wide" \
  /usr/bin/time -f "%e" -o "$WORK/time" "$SLUICE" --config "$WORK/wide.yaml" refresh wide --dry-run >/dev/null
w_secs=$(cat "$WORK/time")

# The full copy of the same database, in the same run: the rate the subset is measured against.
python3 - "$CFG" "$WORK/whole.yaml" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
text = text.replace("  subset:\n", "  whole:\n", 1)
text = re.sub(r"    subset:\n(      .*\n)+", "", text)
open(sys.argv[2], "w").write(text)
PY
STAGING_DATABASE_URL="postgresql://postgres@127.0.0.1:$PORT/whole_target" \
  "$SLUICE" --config "$WORK/whole.yaml" refresh whole >/dev/null 2>&1   # warm, as above
STAGING_DATABASE_URL="postgresql://postgres@127.0.0.1:$PORT/whole_target" \
  /usr/bin/time -f "%e" -o "$WORK/time" "$SLUICE" --config "$WORK/whole.yaml" refresh whole \
  --report "$WORK/whole-report.json" >/dev/null 2>>"$WORK/subset.log"
f_secs=$(cat "$WORK/time")
f_rows=$(python3 -c "import json,sys; print(sum(t['rows'] for t in json.load(open(sys.argv[1]))['tables']))" "$WORK/whole-report.json")
full_rps=$(python3 -c "print(round($f_rows/$f_secs))")
cat <<EOF
pgbench scale $SCALE + $HISTORY history rows; subset: branches bid <= 5 with children accounts, tellers, history; $(nproc) cores
sluice subset refresh : $s_rows rows in ${s_secs}s = $(python3 -c "print(round($s_rows/$s_secs))") rows/s; key sets $s_keys bytes ($(python3 -c "print(round($s_keys/$s_rows, 2))") per row); peak RSS $((s_rss / 1024)) MB
by hand (psql COPY)   : $h_rows rows in ${h_secs}s = $(python3 -c "print(round($h_rows/$h_secs))") rows/s (no indexes, no swap, no closure)
full copy (sluice)    : $f_rows rows in ${f_secs}s = $full_rps rows/s (the whole database, every column kept)
subset vs full copy   : $(python3 -c "print(round(100*$s_rows/$s_secs/$full_rps))")% of its rows/s; by hand: $(python3 -c "print(round(100*$h_rows/$h_secs/$full_rps))")%
plan of 200 tables    : ${w_secs}s (sluice refresh --dry-run: connect, catalog, coverage, subset planning)
EOF
