#!/usr/bin/env bash
# Benchmark of the unified view, side by side in one run: `kubectl get pods -A`
# through the unified view (context flotilla-all) vs. the shell loop a user would
# write without it (`kubectl --context memberN get pods -A` for every member, output
# merged), for MEMBERS simulated members (default "10 100") with PODS pods each
# (default 1000, from one Deployment per member). Also the memory the unified view's
# caches take: the process's RSS before the default ResourceRegistry exists (no
# caches) and after every pod is cached, against the raw JSON size of the cached
# objects (the aggregated server's flotilla_unified_cache_bytes metric).
#
# In the same run, every pod read through the same unified view URL by a client
# without kubectl's rate limiter, decoding and printing (`flotilla-bench
# unified-read`: one request and pages of 500 following `continue`, as a Table
# and as JSON), so the server's and transport's share of kubectl's time shows;
# and, when KUBECTL_NEW names another kubectl binary, its `get pods -A` too.
#
# Usage: bench/unified.sh [path/to/flotilla [path/to/flotilla-bench]]
#        (default: target/release/flotilla and target/release/flotilla-bench)
#        MEMBERS="10" PODS=200 RUNS=3 bench/unified.sh     (a short run)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/flotilla}
bench=${2:-target/release/flotilla-bench}
[ -x "$bin" ] || { echo "build it first: cargo build --release -p flotilla" >&2; exit 1; }
[ -x "$bench" ] || { echo "build it first: cargo build --release -p flotilla-bench" >&2; exit 1; }
kubectl_new=${KUBECTL_NEW:-}
reads=""
members_list=${MEMBERS:-"10 100"}
pods=${PODS:-1000}
runs=${RUNS:-5}
now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

printf '| members | pods | unified `get pods -A` p50 | unified `--chunk-size=0` p50 | shell loop p50 | ratio (default / loop) | ratio (chunk 0 / loop) | raw JSON cached | cache memory (RSS delta) | memory / JSON |\n'
printf '|---|---|---|---|---|---|---|---|---|---|\n'
for n in $members_list; do
  dir=$(mktemp -d)
  log="$dir/up.log"
  "$bin" up --dir "$dir/state" --bind 127.0.0.1:0 --members "$n" --nodes 10 >"$log" 2>"$dir/err.log" &
  pid=$!
  trap 'kill -TERM $pid 2>/dev/null || true' EXIT
  for _ in $(seq 1 1200); do
    grep -q '^flotilla is up' "$log" && break
    kill -0 "$pid" 2>/dev/null || { cat "$dir/err.log" >&2; exit 1; }
    sleep 0.1
  done
  export KUBECONFIG="$dir/state/kubeconfig"
  agg="$dir/state/aggregated-apiserver/kubeconfig"
  k() { kubectl --request-timeout=300s "$@"; }
  # No caches while the pods are created: the baseline holds the members' own copies.
  k --context flotilla delete resourceregistry default >/dev/null
  creators=()
  for i in $(seq 1 "$n"); do
    k --context "member$i" create deployment bench --image=nginx --replicas="$pods" >/dev/null &
    creators+=($!)
    if (( i % 8 == 0 )); then wait "${creators[@]}"; creators=(); fi
  done
  if (( ${#creators[@]} > 0 )); then wait "${creators[@]}"; fi
  want=$((n * pods))
  for _ in $(seq 1 1200); do
    have=0
    for i in $(seq 1 "$n"); do
      c=$(k --context "member$i" get pods -o name 2>/dev/null | wc -l)
      have=$((have + c))
    done
    [ "$have" -ge "$want" ] && break
    sleep 2
  done
  sleep 10
  rss0=$(rss_kib "$pid")
  k --context flotilla apply -f deploy/aggregated-apiserver/resourceregistry-default.yaml >/dev/null
  cached=0
  for _ in $(seq 1 600); do
    cached=$(k --kubeconfig "$agg" get --raw /metrics | awk '/^flotilla_unified_cache_objects\{.*resource="pods"/ {s+=$2} END {print s+0}')
    [ "$cached" -ge "$want" ] && break
    sleep 1
  done
  sleep 10
  rss1=$(rss_kib "$pid")
  json_bytes=$(k --kubeconfig "$agg" get --raw /metrics | awk '/^flotilla_unified_cache_bytes/ {s+=$2} END {printf "%d", s}')
  load=$(awk '{print $1}' /proc/loadavg)
  unified=()
  whole=()
  loop=()
  newer=()
  for _ in $(seq 1 "$runs"); do
    t0=$(now)
    rows=$(k --context flotilla-all get pods -A --no-headers | wc -l)
    t1=$(now)
    [ "$rows" -eq "$want" ] || echo "unified view returned $rows of $want pods" >&2
    unified+=("$(echo "$t1 - $t0" | bc)")
    t0=$(now)
    rows=$(k --context flotilla-all get pods -A --no-headers --chunk-size=0 | wc -l)
    t1=$(now)
    [ "$rows" -eq "$want" ] || echo "unified view (one page) returned $rows of $want pods" >&2
    whole+=("$(echo "$t1 - $t0" | bc)")
    t0=$(now)
    rows=$(for i in $(seq 1 "$n"); do k --context "member$i" get pods -A --no-headers; done | wc -l)
    t1=$(now)
    [ "$rows" -eq "$want" ] || echo "the loop returned $rows of $want pods" >&2
    loop+=("$(echo "$t1 - $t0" | bc)")
    if [ -n "$kubectl_new" ]; then
      t0=$(now)
      rows=$("$kubectl_new" --request-timeout=300s --context flotilla-all get pods -A --no-headers | wc -l)
      t1=$(now)
      [ "$rows" -eq "$want" ] || echo "the newer kubectl returned $rows of $want pods" >&2
      newer+=("$(echo "$t1 - $t0" | bc)")
    fi
  done
  # The same URL without kubectl: Table and JSON, one request and pages of 500.
  read_out=$(KUBECONFIG="$KUBECONFIG" RUNS="$runs" WANT="$want" "$bench" unified-read)
  r() { echo "$read_out" | awk -v w="$1" '$1 == w {printf "%.3f s", $2}'; }
  rb() { echo "$read_out" | awk -v w="$1" '$1 == w {printf "%.0f MB", $4 / 1e6}'; }
  nw="-"
  if (( ${#newer[@]} > 0 )); then nw="$(printf '%.2f s' "$(printf '%s\n' "${newer[@]}" | median)")"; fi
  u=$(printf '%s\n' "${unified[@]}" | median)
  w=$(printf '%s\n' "${whole[@]}" | median)
  l=$(printf '%s\n' "${loop[@]}" | median)
  delta_kib=$((rss1 - rss0))
  printf '| %d | %d | %.2f s | %.2f s | %.2f s | %.2f× | %.2f× | %.0f MiB | %.0f MiB | %.2f× |\n' \
    "$n" "$want" "$u" "$w" "$l" "$(echo "$u / $l" | bc -l)" "$(echo "$w / $l" | bc -l)" \
    "$(echo "$json_bytes / 1048576" | bc -l)" "$(echo "$delta_kib / 1024" | bc -l)" \
    "$(echo "$delta_kib * 1024 / $json_bytes" | bc -l)"
  reads+="$(printf '| %d | %d | %s | %s (%s) | %s (%s) | %s | %s | %.2f s | %.2f s | %s | %.2f s |' \
    "$n" "$want" "$load" "$(r table_one_request)" "$(rb table_one_request)" \
    "$(r json_one_request)" "$(rb json_one_request)" "$(r table_pages_of_500)" \
    "$(r json_pages_of_500)" "$u" "$w" "$nw" "$l")"$'\n'
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  trap - EXIT
  rm -rf "$dir"
done
printf '\nThe same unified view read without kubectl (p50 of %d runs; load average at the start of the runs):\n\n' "$runs"
printf '| members | pods | load | Table, one request | JSON, one request | Table, pages of 500 | JSON, pages of 500 | kubectl `get pods -A` | kubectl `--chunk-size=0` | newer kubectl `get pods -A` | shell loop |\n'
printf '|---|---|---|---|---|---|---|---|---|---|---|\n'
printf '%s' "$reads"
