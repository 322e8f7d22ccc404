#!/usr/bin/env bash
# PgBouncer throughput (issue 12): pgbench TPC-B through PgBouncer -> router, PgBouncer -> HAProxy, and the router
# alone, side by side in one run, interleaved. The stack is a one-node `steward demo --pgbouncer` (etcd, one agent with
# PostgreSQL 15, the router, PgBouncer in transaction pooling in front of the write port), plus HAProxy configured by
# `steward haproxy-config` and a second PgBouncer (same ini) in front of HAProxy's write port.
#   BENCH_SECONDS    per pgbench run (default 10)      BENCH_REPS       repetitions (default 1)
#   BENCH_CLIENTS    pgbench -c (default 8)            BENCH_BASE_PORT  the demo's port block (default 26100; +6..+9 here)
# Needs root (PostgreSQL and PgBouncer run as the postgres user), pgbench, haproxy and pgbouncer. Everything it starts
# it stops by PID (and the demo with `steward demo --down`), also on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${BENCH_SECONDS:-10}; REPS=${BENCH_REPS:-1}; CLIENTS=${BENCH_CLIENTS:-8}; BASE=${BENCH_BASE_PORT:-26100}
DIR=$(mktemp -d /tmp/steward-bench-pgb.XXXXXX)
chmod 755 "$DIR"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.1; done; done
    ./steward demo --down --dir "$DIR/demo" >/dev/null 2>&1 || true
    rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() { for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }

echo "== steward demo --pgbouncer --nodes 1 (logs in $DIR/demo)"
./steward demo --detach --pgbouncer --nodes 1 --dir "$DIR/demo" --base-port "$BASE" 2>&1 | grep -E "^steward demo: (starting|port)" || true
port() { python3 -c "import json,sys; print(json.load(open('$DIR/demo/demo.json'))['ports']['$1'])"; }
ETCD=$(port etcd); WRITE=$(port write); PGB_ROUTER=$(port pgbouncer)
HA_WRITE=$((BASE + 6)); HA_READ=$((BASE + 7)); HA_STATS=$((BASE + 8)); PGB_HAPROXY=$((BASE + 9))

echo "== HAProxy (steward haproxy-config) on $HA_WRITE, PgBouncer in front of it on $PGB_HAPROXY"
./steward haproxy-config --etcd "127.0.0.1:$ETCD" --scope demo --bind 127.0.0.1 \
    --write-port "$HA_WRITE" --read-port "$HA_READ" --stats-port "$HA_STATS" >"$DIR/haproxy.cfg"
haproxy -f "$DIR/haproxy.cfg" -db >"$DIR/haproxy.log" 2>&1 &
pids+=($!)
mkdir -p "$DIR/pgb-haproxy"
sed -e "s/^listen_port = .*/listen_port = $PGB_HAPROXY/" -e "s/port=$WRITE\$/port=$HA_WRITE/" \
    -e "s|$DIR/demo/pgbouncer/userlist.txt|$DIR/pgb-haproxy/userlist.txt|" \
    "$DIR/demo/pgbouncer/pgbouncer.ini" >"$DIR/pgb-haproxy/pgbouncer.ini"
cp "$DIR/demo/pgbouncer/userlist.txt" "$DIR/pgb-haproxy/userlist.txt"
chown -R postgres:postgres "$DIR/pgb-haproxy"
setpriv --reuid=postgres --regid=postgres --init-groups -- /usr/sbin/pgbouncer "$DIR/pgb-haproxy/pgbouncer.ini" >"$DIR/pgb-haproxy.log" 2>&1 &
pids+=($!)
wait_port "$PGB_HAPROXY"

export PGPASSWORD=postgres
for _ in $(seq 100); do psql -h 127.0.0.1 -p "$HA_WRITE" -U postgres -d postgres -Atc "select 1" >/dev/null 2>&1 && break; sleep 0.2; done
echo "== pgbench -i -s 10 through the router"
pgbench -i -s 10 -q -h 127.0.0.1 -p "$WRITE" -U postgres postgres 2>&1 | tail -1

declare -A tps lat
targets=("pgbouncer->router:$PGB_ROUTER" "pgbouncer->haproxy:$PGB_HAPROXY" "router:$WRITE")
echo "== pgbench TPC-B -c $CLIENTS -j 2 -T $SECS, $REPS repetition(s), interleaved"
for rep in $(seq "$REPS"); do
    for t in "${targets[@]}"; do
        name=${t%%:*}; p=${t##*:}
        out=$(pgbench -c "$CLIENTS" -j 2 -T "$SECS" -h 127.0.0.1 -p "$p" -U postgres postgres 2>&1)
        v=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out"); l=$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' <<<"$out")
        printf '  rep %d %-20s %8.0f tps  %7.3f ms\n' "$rep" "$name" "${v:-0}" "${l:-0}"
        tps[$name]="${tps[$name]:-} ${v:-0}"; lat[$name]="${lat[$name]:-} ${l:-0}"
    done
done

echo
echo "| path | TPS (mean) | mean latency ms | ratio to router alone |"
echo "|---|---|---|---|"
router_tps=$(tr ' ' '\n' <<<"${tps[router]}" | awk 'NF { s += $1; n++ } END { print s / n }')
for t in "${targets[@]}"; do
    name=${t%%:*}
    m=$(tr ' ' '\n' <<<"${tps[$name]}" | awk 'NF { s += $1; n++ } END { print s / n }')
    l=$(tr ' ' '\n' <<<"${lat[$name]}" | awk 'NF { s += $1; n++ } END { print s / n }')
    awk -v n="$name" -v m="$m" -v l="$l" -v r="$router_tps" 'BEGIN { printf "| %s | %.0f | %.3f | %.2f |\n", n, m, l, m / r }'
done
