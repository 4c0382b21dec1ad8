# Shared by benches/subset.sh and benches/envs.sh (sourced after bench-cluster.sh, not run):
# pgbench data at $SCALE with $HISTORY history rows that point into other branches, and a
# sluice.yaml ($CFG) with plan `subset`: roots pgbench_branches WHERE bid <= 5, children
# accounts, tellers and history, into database subset_target.
# Needs: SCALE, HISTORY, WORK, PORT, and q/P from bench-cluster.sh.

if [ "$(q -d postgres -c "select count(*) from pg_database where datname = 'bench'")" = 0 ]; then
  echo "initializing pgbench scale $SCALE with $HISTORY history rows…" >&2
  q -d postgres -c "create database bench"
  pgbench "${P[@]}" -i -s "$SCALE" --foreign-keys -q bench >/dev/null 2>&1
  # History rows whose account, teller and branch belong to different branches.
  q -d bench -c "insert into pgbench_history (tid, bid, aid, delta, mtime)
    select 1 + (i::bigint * 7919) % ($SCALE * 10), 1 + (i::bigint * 104729) % $SCALE, 1 + (i::bigint * 1299709) % ($SCALE * 100000),
           (i % 1000) - 500, now()
      from generate_series(1, $HISTORY) i"
  q -d bench -c "vacuum analyze"
fi

# sluice.
CFG="$WORK/subset.yaml"
cat >"$CFG" <<YAML
version: 1
environments:
  prod: { protected: true, secrets: { provider: env, prefix: PROD_ } }
  staging: { secrets: { provider: env, prefix: STAGING_ } }
secrets:
  DATABASE_URL: { prod: env://DATABASE_URL, staging: env://DATABASE_URL }
  MASKING_KEY: { prod: env://MASKING_KEY }
refresh:
  subset:
    source: { env: prod, url: "secret:DATABASE_URL" }
    target: { env: staging, url: "secret:DATABASE_URL" }
    same_server: true                # the benchmark copies within one cluster
    subset:
      roots: [{ table: pgbench_branches, where: "bid <= 5" }]
      children: [pgbench_accounts, pgbench_tellers, pgbench_history]
    masking:
      key: "secret:MASKING_KEY"
      presets: []
      columns: { pgbench_accounts.*: keep, pgbench_branches.*: keep, pgbench_tellers.*: keep, pgbench_history.*: keep }
YAML
export PROD_DATABASE_URL="postgresql://postgres@127.0.0.1:$PORT/bench"
export PROD_MASKING_KEY="benchmark-key-3f9c2a71d8e4b605"
export STAGING_DATABASE_URL="postgresql://postgres@127.0.0.1:$PORT/subset_target"
