#!/usr/bin/env bash
# Compare sluice's scan speed and memory with peers, in one run, on this machine.
#
#   benches/compare.sh [--gb N] [--runs N] [--skip-git] [--tree DIR]
#
# --tree DIR measures sluice, kingfisher and rg on DIR instead of the built tree: the issue's
# second tree is one copy of the cargo registry sources plus site-packages (many small files),
# e.g. $SLUICE_BENCH_DIR/tree/copy1 after a first run.
#
# Builds (once, cached under $SLUICE_BENCH_DIR, default /tmp/sluice-bench):
#   tree/    >= N GB (default 1) of real source text: copies of ~/.cargo/registry/src and Python's
#            site-packages
#   slice/   ~30 MB of the same, for the slow peer
#   history/ a git repository with 10k+ commits (git fast-import of edits to real source files)
# Installs the peers when missing: kingfisher (PyPI kingfisher-bin), ripsecrets (cargo install),
# rg (Debian ripgrep). Times each command with a warm cache, median of --runs (default 3), and
# peak RSS (GNU time), then prints MB/s and the ratios the targets are stated in.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
GB=1; RUNS=3; DO_GIT=1; TREE=
while [ $# -gt 0 ]; do
  case "$1" in
    --gb) GB=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --skip-git) DO_GIT=0; shift ;;
    --tree) TREE=$2; shift 2 ;;
    *) echo "usage: $0 [--gb N] [--runs N] [--skip-git] [--tree DIR]" >&2; exit 2 ;;
  esac
done
W=${SLUICE_BENCH_DIR:-/tmp/sluice-bench}
mkdir -p "$W/bin"
site=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
export PATH="$W/bin:$W/venv/bin:$PATH"

say() { printf '%s\n' "$*" >&2; }

# --- peers ---------------------------------------------------------------------------------
if ! command -v kingfisher >/dev/null; then
  say "installing kingfisher (PyPI kingfisher-bin)"
  python3 -m venv "$W/venv" && "$W/venv/bin/pip" install -q kingfisher-bin
fi
if ! command -v ripsecrets >/dev/null; then
  say "installing ripsecrets (cargo install)"
  cargo install -q ripsecrets --root "$W"
fi
if ! command -v rg >/dev/null; then
  say "installing ripgrep (apt)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ripgrep >/dev/null
fi
say "building sluice (release)"
cargo build -q --release
SLUICE=$ROOT/target/release/sluice

# --- corpus ---------------------------------------------------------------------------------
want=$((GB * 1000 * 1000 * 1000))
sources=("${CARGO_HOME:-$HOME/.cargo}/registry/src")
[ -d "$site" ] && sources+=("$site")
size_of() { du -sb "$1" 2>/dev/null | cut -f1; }
mkdir -p "$W/tree"
# Copies already made are kept; a new one goes to the next free number (copying into an existing
# copy would nest the sources inside it).
n=$(find "$W/tree" -mindepth 1 -maxdepth 1 -name 'copy*' | wc -l)
while [ "$(size_of "$W/tree")" -lt "$want" ]; do
  n=$((n + 1))
  for s in "${sources[@]}"; do
    mkdir -p "$W/tree/copy$n/$(basename "$s")-$n"
    cp -r "$s/." "$W/tree/copy$n/$(basename "$s")-$n" 2>/dev/null || true
  done
  say "tree: $(( $(size_of "$W/tree") / 1000000 )) MB"
done
TREE=${TREE:-$W/tree}
TREE_BYTES=$(size_of "$TREE")
if [ ! -d "$W/slice" ]; then
  mkdir -p "$W/slice"
  (cd "$W/tree" && find . -type f -name '*.rs' | sort | awk 'NR <= 1500' | tar -cf - -T - | tar -xf - -C "$W/slice")
fi
SLICE_BYTES=$(size_of "$W/slice")

# --- history --------------------------------------------------------------------------------
make_history() {
  local repo=$W/history
  rm -rf "$repo"; git init -q -b main "$repo"
  python3 - "$repo" "${sources[@]}" <<'PY' | git -C "$repo" fast-import --quiet
import os, sys
repo, srcs = sys.argv[1], sys.argv[2:]
files = []
for src in srcs:
    for d, _, fs in os.walk(src):
        files.extend(os.path.join(d, f) for f in fs if f.endswith((".rs", ".py")))
files.sort()
files = files[:12000]
out = sys.stdout.buffer
mark = 0
for i, path in enumerate(files):
    try:
        data = open(path, "rb").read()
    except OSError:
        continue
    name = "src/%d/%s" % (i % 97, os.path.basename(path))
    out.write(b"commit refs/heads/main\n")
    out.write(b"committer Bench <bench@invalid> %d +0000\n" % (1700000000 + i))
    msg = b"edit %d" % i
    out.write(b"data %d\n%s\n" % (len(msg), msg))
    out.write(b"M 100644 inline %s\n" % name.encode())
    out.write(b"data %d\n" % len(data))
    out.write(data)
    out.write(b"\n")
PY
  git -C "$repo" reset -q --hard main
}
if [ "$DO_GIT" = 1 ]; then
  if [ "$(git -C "$W/history" rev-list --count --all 2>/dev/null)" -lt 10000 ] 2>/dev/null || [ ! -d "$W/history" ]; then
    say "building a 10k-commit history"
    make_history
  fi
  COMMITS=$(git -C "$W/history" rev-list --count --all)
fi

# --- measuring ------------------------------------------------------------------------------
warm() { find "$1" -type f -print0 | xargs -0 cat >/dev/null 2>&1 || true; }
# measure NAME CMD... : prints "median_seconds peak_rss_kb"
measure() {
  local name=$1; shift
  local times=() rss=0 i t m
  for ((i = 0; i < RUNS; i++)); do
    /usr/bin/time -f '%e %M' -o "$W/time.out" "$@" >/dev/null 2>"$W/$name.err" || true
    read -r t m < <(tail -n 1 "$W/time.out")
    times+=("$t"); [ "$m" -gt "$rss" ] && rss=$m
  done
  local med
  med=$(printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  echo "$med $rss"
}
mbps() { awk -v b="$1" -v s="$2" 'BEGIN { if (s <= 0) s = 0.001; printf "%.1f", b / 1e6 / s }'; }

warm "$TREE"
printf '\n%-28s %10s %10s %12s\n' "command" "seconds" "MB/s" "peak RSS MB"
row() { printf '%-28s %10s %10s %12d\n' "$1" "$2" "$(mbps "$3" "$2")" "$(( $4 / 1024 ))"; }

read -r s_t s_m < <(measure sluice "$SLUICE" scan -q --format json -o "$W/sluice.json" "$TREE")
row "sluice scan (tree)" "$s_t" "$TREE_BYTES" "$s_m"
read -r k_t k_m < <(measure kingfisher kingfisher scan "$TREE" --no-validate --git-history=none --format json --output "$W/kf.json")
row "kingfisher (tree)" "$k_t" "$TREE_BYTES" "$k_m"
read -r g_t g_m < <(measure rg rg -c AKIA "$TREE")
row "rg -c AKIA (tree)" "$g_t" "$TREE_BYTES" "$g_m"
read -r ss_t ss_m < <(measure sluice-slice "$SLUICE" scan -q --format json -o "$W/sluice-slice.json" "$W/slice")
row "sluice scan (slice)" "$ss_t" "$SLICE_BYTES" "$ss_m"
read -r r_t r_m < <(measure ripsecrets ripsecrets "$W/slice")
row "ripsecrets (slice)" "$r_t" "$SLICE_BYTES" "$r_m"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a <= 0) a = 0.001; printf "%.2f", b / a }'; }
echo
echo "tree: $TREE, $((TREE_BYTES / 1000000)) MB, $(find "$TREE" -type f | wc -l) files, slice: $((SLICE_BYTES / 1000000)) MB, runs: $RUNS (median), cores: $(nproc)"
echo "sluice vs kingfisher (tree):  $(ratio "$s_t" "$k_t")x faster   (target >= 3)"
echo "sluice vs ripsecrets (slice): $(ratio "$ss_t" "$r_t")x faster   (target >= 10)"
echo "sluice vs rg ceiling:         $(ratio "$g_t" "$s_t")x slower   (target <= 3)"
echo "sluice peak RSS:              $((s_m / 1024)) MB      (target <= 250)"

if [ "$DO_GIT" = 1 ]; then
  echo
  read -r sg_t sg_m < <(measure sluice-git "$SLUICE" scan -q --git --repo "$W/history" --format json -o "$W/sluice-git.json")
  read -r kg_t kg_m < <(measure kingfisher-git kingfisher scan "$W/history" --no-validate --format json --output "$W/kf-git.json")
  echo "history: $COMMITS commits"
  printf '%-28s %10s %12s\n' "sluice scan --git" "$sg_t" "$((sg_m / 1024)) MB"
  printf '%-28s %10s %12s\n' "kingfisher (git history)" "$kg_t" "$((kg_m / 1024)) MB"
  echo "sluice vs kingfisher (history): $(ratio "$sg_t" "$kg_t")x faster (target >= 1)"
fi
