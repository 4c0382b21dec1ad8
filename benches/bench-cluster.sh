# Shared by benches/refresh.sh and benches/subset.sh (sourced, not run): builds sluice in
# release mode and starts a throwaway PostgreSQL cluster in $WORK/$1 on $PORT, stopped on exit.
# Sets SLUICE, P (psql connection flags) and q (psql for one value).
# Needs: ROOT, WORK, PORT set by the caller.

BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
export PATH="$BIN:$PATH"
AS=()
if [ "$(id -u)" = 0 ]; then AS=(runuser -u postgres --); fi

# SLUICE_BIN: measure that binary (another build, for a before/after comparison) instead.
if [ -n "${SLUICE_BIN:-}" ]; then
    SLUICE="$SLUICE_BIN"
else
    cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
    SLUICE="$ROOT/target/release/sluice"
fi

mkdir -p "$WORK"
DATA="$WORK/$1"
if [ ! -d "$DATA" ]; then
  [ ${#AS[@]} -gt 0 ] && chown postgres "$WORK"
  "${AS[@]}" initdb -D "$DATA" -U postgres --auth=trust --no-sync -E UTF8 --locale=C >/dev/null
fi
[ ${#AS[@]} -gt 0 ] && chown -R postgres "$WORK"
"${AS[@]}" pg_ctl -D "$DATA" -l "$WORK/$1.log" -w -o "-c listen_addresses=127.0.0.1 -c port=$PORT \
  -c unix_socket_directories=$WORK -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
  -c shared_buffers=256MB -c max_wal_size=4GB -c maintenance_work_mem=256MB" start >/dev/null
trap '"${AS[@]}" pg_ctl -D "$DATA" -m fast -w stop >/dev/null' EXIT

P=(-h 127.0.0.1 -p "$PORT" -U postgres)
q() { psql "${P[@]}" -X -q -At -v ON_ERROR_STOP=1 "$@"; }
