#!/usr/bin/env bash
# Benchmark of `flotilla up`: time from start to every member cluster Ready, and the
# process's resident memory, for 0, 3, 10 and 100 simulated members, side by side in
# one run. Memory per member = (RSS with N members - RSS with none) / N, measured
# after the members have been idle for a few seconds.
#
# Usage: bench/up.sh [path/to/flotilla]   (default: target/release/flotilla)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/flotilla}
[ -x "$bin" ] || { echo "build it first: cargo build --release -p flotilla" >&2; exit 1; }

printf '| members | ready after | RSS | RSS per member |\n|---|---|---|---|\n'
base_kib=0
for n in 0 3 10 100; do
  dir=$(mktemp -d)
  log="$dir/up.log"
  "$bin" up --dir "$dir/state" --bind 127.0.0.1:0 --members "$n" >"$log" 2>&1 &
  pid=$!
  ready=""
  for _ in $(seq 1 600); do
    ready=$(sed -n 's/^flotilla is up in \(.*\)$/\1/p' "$log")
    [ -n "$ready" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  sleep 5
  rss_kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
  if [ "$n" -eq 0 ]; then
    base_kib=$rss_kib
    per="—"
  else
    per="$(( (rss_kib - base_kib) / n / 1024 )) MiB"
  fi
  printf '| %s | %s | %s MiB | %s |\n' "$n" "${ready:-not ready}" "$(( rss_kib / 1024 ))" "$per"
done
