#!/usr/bin/env bash
# Secret resolution, end to end through the release binary:
#   run overhead  `sluice run --env dev -- true` (age store, 10 secrets) against plain `true`
#   vault         100 secrets from OpenBao on loopback: `sluice export --env staging`
#   aws           100 secrets from moto on loopback: `sluice export --env prod`
#   watch         `sluice run --watch --interval 10` with 100 Vault references: CPU share
# Times are hyperfine medians; each includes process start, config load and the logins.
# Needs hyperfine (Debian: apt-get install hyperfine) and the servers scripts/test installs
# (OpenBao, moto) in $SLUICE_TEST_SERVERS_HOME (default ~/.cache/sluice-test-servers).
#
# Usage: benches/secrets.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${SLUICE_TEST_SERVERS_HOME:-$HOME/.cache/sluice-test-servers}/venv
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
SLUICE="$ROOT/target/release/sluice"
WORK=$(mktemp -d)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
cd "$WORK"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
median() { python3 -c "import json,sys; print(round(json.load(open(sys.argv[1]))['results'][int(sys.argv[2])]['median']*1000, 2))" "$1" "$2"; }

# OpenBao and moto.
BAO_PORT=$(free_port); MOTO_PORT=$(free_port)
"$VENV/bin/bao" server -dev -dev-listen-address="127.0.0.1:$BAO_PORT" -dev-root-token-id=bench-root >/dev/null 2>&1 &
PIDS+=($!)
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >/dev/null 2>&1 &
PIDS+=($!)
export VAULT_ADDR="http://127.0.0.1:$BAO_PORT" BAO_ADDR="http://127.0.0.1:$BAO_PORT" BAO_TOKEN=bench-root VAULT_TOKEN=bench-root
for _ in $(seq 100); do "$VENV/bin/bao" status >/dev/null 2>&1 && break; sleep 0.1; done
for i in $(seq 100); do "$VENV/bin/bao" kv put "secret/staging/svc$i" "key=value-$i" >/dev/null; done
"$VENV/bin/python" - "$MOTO_PORT" <<'PY'
import sys, boto3
sm = boto3.client('secretsmanager', endpoint_url=f'http://127.0.0.1:{sys.argv[1]}', region_name='eu-central-1',
                  aws_access_key_id='testing', aws_secret_access_key='testing')
for i in range(1, 101):
    sm.create_secret(Name=f'prod/svc{i}', SecretString=f'value-{i}')
PY
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing MOTO_ENDPOINT="http://127.0.0.1:$MOTO_PORT"

{
  echo "version: 1"
  echo "environments:"
  echo "  dev: { secrets: { provider: age, file: dev.age } }"
  echo "  staging: { secrets: { provider: vault, address: '\${VAULT_ADDR}', prefix: staging/ } }"
  echo "  prod: { secrets: { provider: aws, region: eu-central-1, prefix: prod/, endpoint: '\${MOTO_ENDPOINT}' } }"
  echo "secrets:"
  for i in $(seq 100); do
    if [ "$i" -le 10 ]; then dev="dev: 'age://SVC$i', "; else dev=""; fi
    echo "  SVC$i: { ${dev}staging: 'vault://svc$i#key', prod: 'aws://svc$i' }"
  done
} >sluice.yaml
export SLUICE_AGE_KEY_FILE="$WORK/dev.key"
"$SLUICE" secrets init --env dev >/dev/null 2>&1
for i in $(seq 10); do printf 'dev-value-%s' "$i" | "$SLUICE" secrets set --env dev "SVC$i" >/dev/null 2>&1; done
"$SLUICE" run --env dev -- true   # fails loudly if the store does not work

hyperfine -N -w 20 -r 200 --export-json run.json "true" "$SLUICE run --env dev -- true" >/dev/null 2>&1
hyperfine -N -w 3 -r 30 --export-json remote.json \
  "$SLUICE export --env staging --format json" "$SLUICE export --env prod --format json" >/dev/null 2>&1
test "$("$SLUICE" export --env staging --format json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 100
test "$("$SLUICE" export --env prod --format json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 100

# The watch loop: 100 Vault references polled every 10 s for a minute; sluice's own CPU time.
"$SLUICE" run --env staging --watch --interval 10 -- sleep 75 &
WATCH_PID=$!
PIDS+=($WATCH_PID)
sleep 62
read -r -a STAT < "/proc/$WATCH_PID/stat"
TICKS=$(getconf CLK_TCK)
watch_cpu=$(python3 -c "print(round((${STAT[13]} + ${STAT[14]}) / $TICKS / 62 * 100, 3))")
kill "$WATCH_PID" 2>/dev/null || true

t_true=$(median run.json 0); t_run=$(median run.json 1)
cat <<OUT
$(nproc) cores; hyperfine medians (process start included)
true                               : ${t_true} ms
sluice run --env dev -- true (age) : ${t_run} ms  (overhead $(python3 -c "print(round($t_run - $t_true, 2))") ms; target <= 5 ms)
100 secrets from OpenBao (export)  : $(median remote.json 0) ms  (target <= 100 ms)
100 secrets from moto (export)     : $(median remote.json 1) ms  (target <= 300 ms)
run --watch, 100 Vault refs, 10 s  : ${watch_cpu}% of a core over 62 s (target <= 1%)
OUT
