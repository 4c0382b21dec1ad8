#!/usr/bin/env bash
# Configuration parsing scales linearly: `sluice check` on sluice.yaml files with 16k, 64k and
# 200k variables (each one env:// reference), and a SOPS-sized alias bomb refused. Prints wall
# seconds, peak RSS and seconds per 10k variables; the per-10k figure should stay flat.
#
# Usage: benches/config.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
SLUICE="$ROOT/target/release/sluice"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
printf '%-10s %8s %10s %12s\n' variables seconds "RSS MB" "s per 10k"
for n in 16000 64000 200000; do
  python3 - "$n" > sluice.yaml <<'PY'
import sys
n = int(sys.argv[1])
print("version: 1\nenvironments:\n  dev: { secrets: { provider: env } }\nsecrets:")
for i in range(n):
    print(f"  V{i}: {{ dev: env://V{i} }}")
PY
  /usr/bin/time -f '%e %M' -o time.txt "$SLUICE" check >/dev/null
  read -r secs kb < time.txt
  printf '%-10s %8s %10d %12.3f\n' "$n" "$secs" $((kb / 1024)) "$(echo "$secs * 10000 / $n" | bc -l)"
done
# 12 levels of 9-fold aliases: 9^12 values in a few hundred bytes, refused at the limit.
{
  echo "version: 1"
  echo "x0: &x0 [a, a, a, a, a, a, a, a, a]"
  for i in $(seq 1 12); do p=$((i - 1)); echo "x$i: &x$i [*x$p, *x$p, *x$p, *x$p, *x$p, *x$p, *x$p, *x$p, *x$p]"; done
} > sluice.yaml
/usr/bin/time -f '%e %M' -o time.txt "$SLUICE" check >/dev/null 2>&1 || true
read -r secs kb < <(tail -n 1 time.txt)
printf 'alias bomb (%d bytes): refused in %s s, %d MB\n' "$(wc -c < sluice.yaml)" "$secs" $((kb / 1024))
