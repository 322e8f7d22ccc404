#!/usr/bin/env bash
# PgBouncer through a planned switchover and through a crash of the leader (issue 12), the long variants of
# test/Steward.IntegrationTests/Router/PgBouncerSwitchoverTests, on a three-node `steward demo --pgbouncer`.
# Two chains run at the same time, 16 clients each, every client keeping its connection and running short write
# transactions (BEGIN, INSERT, COMMIT, 10 ms apart) for BENCH_SECONDS:
#   pgbouncer: clients -> PgBouncer (transaction pooling, paused by the router around a switchover) -> router -> leader
#   router:    clients -> the router's write port -> leader (the baseline)
# A third of the way in: first a planned switchover (steward switchover), then, in a second round, kill -9 of the
# leader's agent and postmaster together (a host crash: an unplanned failover, nothing paused). Prints per chain the
# transactions, failed ones, reconnects, longest and p99 latency, and checks every acknowledged write on the leader.
#   BENCH_SECONDS (default 30)   BENCH_CLIENTS (default 16)   BENCH_BASE_PORT (default 26200)
#   BENCH_ROUNDS (default "planned crash")   BENCH_KEEP=1 keeps the directory (demo logs, client logs) for a look
# Needs root; everything it starts it stops by PID (the demo with `steward demo --down`).
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${BENCH_SECONDS:-30}; CLIENTS=${BENCH_CLIENTS:-16}; BASE=${BENCH_BASE_PORT:-26200}
DIR=$(mktemp -d /tmp/steward-bench-pgb.XXXXXX)
chmod 755 "$DIR"
cleanup() {
    ./steward demo --down --dir "$DIR/demo" >/dev/null 2>&1 || true
    if [[ ${BENCH_KEEP:-} == 1 ]]; then echo "kept $DIR"; else rm -rf "$DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

dotnet build -c Release bench/Steward.Bench -v q -nologo >/dev/null
BENCH_DLL=$PWD/bench/Steward.Bench/bin/Release/net10.0/Steward.Bench.dll
bench() { dotnet "$BENCH_DLL" "$@"; }

echo "== steward demo --pgbouncer --nodes 3 (logs in $DIR/demo)"
./steward demo --detach --pgbouncer --nodes 3 --dir "$DIR/demo" --base-port "$BASE" 2>&1 | grep -E "^steward demo: (starting|port)" || true
port() { python3 -c "import json; print(json.load(open('$DIR/demo/demo.json'))['ports']['$1'])"; }
ETCD=$(port etcd); WRITE=$(port write); PGB=$(port pgbouncer)
conn() { echo "Host=127.0.0.1;Port=$1;Username=postgres;Password=postgres;Database=postgres;Timeout=30;Command Timeout=120;Pooling=false"; }

leader() {
    python3 - "$DIR/demo/demo.json" <<'PY'
import json, sys, urllib.request
state = json.load(open(sys.argv[1]))
for name, rest in zip(state["nodes"], state["ports"]["rest"]):
    try:
        if urllib.request.urlopen(f"http://127.0.0.1:{rest}/leader", timeout=2).status == 200:
            print(name)
    except Exception:
        pass
PY
}

crash_leader() {
    local name="" agent postmaster
    for _ in $(seq 50); do name=$(leader | head -1); [[ -n $name ]] && break; sleep 0.2; done
    agent=$(python3 -c "import json; print([p['pid'] for p in json.load(open('$DIR/demo/demo.json'))['processes'] if p['name'] == '$name'][0])")
    postmaster=$(head -1 "$DIR/demo/$name/data/postmaster.pid")
    echo "  kill -9 of $name: agent $agent, postmaster $postmaster"
    kill -9 "$agent" "$postmaster"
}

round() {
    local label=$1 action=$2
    echo "== $label: ${CLIENTS} clients per chain for ${SECS} s; at $((SECS / 3)) s: $action"
    (cd "$DIR" && bench clients "pgbouncer-$label" "$(conn "$PGB")" "$SECS" "$CLIENTS") >"$DIR/pgbouncer-$label.log" 2>&1 &
    local a=$!
    (cd "$DIR" && bench clients "router-$label" "$(conn "$WRITE")" "$SECS" "$CLIENTS") >"$DIR/router-$label.log" 2>&1 &
    local b=$!
    sleep $((SECS / 3))
    local started=$SECONDS
    if [[ $action == switchover ]]; then
        ./steward switchover --etcd "127.0.0.1:$ETCD" --scope demo --force 2>&1 | grep -v "^[+|]" | tail -1 | sed "s/^/  /"
    else
        crash_leader
    fi
    echo "  $action issued; leader now: $(for _ in $(seq 100); do l=$(leader); [[ -n $l ]] && { echo "$l"; break; }; sleep 0.2; done) (after $((SECONDS - started)) s)"
    wait "$a" "$b" || true
    for chain in pgbouncer router; do
        grep -h "^RESULT" "$DIR/$chain-$label.log" || { echo "  $chain-$label: no result; its output:"; tail -5 "$DIR/$chain-$label.log"; continue; }
        grep -h "^ERRORS" "$DIR/$chain-$label.log" | head -5 || true
        grep -h "^  $chain-$label" "$DIR/$chain-$label.log" | head -3 || true
        (cd "$DIR" && bench verify "$chain-$label" "$(conn "$WRITE")") || true
    done
}

for r in ${BENCH_ROUNDS:-planned crash}; do
    case $r in
        planned) round planned switchover ;;
        crash) round crash kill-9 ;;
        *) echo "unknown round $r (planned, crash)" >&2; exit 2 ;;
    esac
done
