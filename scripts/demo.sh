#!/usr/bin/env bash
# scripts/demo.sh — the local cluster: etcd + three Steward agents with PostgreSQL 15 + the router on loopback, the
# seed's ports (PostgreSQL 5432-5434, REST 8008-8010, router 5500/5501, stats 7500, etcd 2379), or free ones when
# those are taken.
#
#   scripts/demo.sh          start it (installs what is missing), print the members, and keep running until Ctrl-C
#   scripts/demo.sh --detach start it and return (stop later with --down)
#   scripts/demo.sh --down   stop a cluster started with --detach (by PID)
#
# Everything lives under $STEWARD_DEMO_DIR (default /tmp/steward-demo). Processes are stopped by the PIDs recorded
# there, never by name.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE="${STEWARD_DEMO_DIR:-/tmp/steward-demo}"
MODE="${1:-foreground}"

say() { printf '%s\n' "$*" >&2; }

stop_pid() { # stop_pid PIDFILE SIGNAL — only if the PID still belongs to the program we started
  local f=$1 sig=$2 pid
  [[ -f $f ]] || return 0
  pid=$(head -1 "$f"); [[ -n $pid && -d /proc/$pid ]] || { rm -f "$f"; return 0; }
  kill -"$sig" "$pid" 2>/dev/null || true
  for _ in $(seq 1 300); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
  [[ -d /proc/$pid ]] && kill -9 "$pid" 2>/dev/null || true
  rm -f "$f"
}

down() {
  [[ -d $BASE ]] || { say "nothing to stop: $BASE does not exist"; return 0; }
  say "stopping the demo cluster in $BASE"
  stop_pid "$BASE/router.pid" TERM
  for n in 1 2 3; do stop_pid "$BASE/node$n/agent.pid" TERM & done; wait
  for n in 1 2 3; do stop_pid "$BASE/node$n/data/postmaster.pid" QUIT; done  # a postmaster left behind by a killed agent
  stop_pid "$BASE/etcd.pid" TERM
  say "stopped; data kept in $BASE (remove it to start from scratch)"
}

if [[ $MODE == --down ]]; then down; exit 0; fi
if [[ $MODE == --help || $MODE == -h ]]; then sed -n '2,11p' "$0"; exit 0; fi

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() { # pick_port PREFERRED — the preferred port when free, else a free one (announced)
  local p=$1
  if port_free "$p"; then echo "$p"; return; fi
  for q in $(seq $((p + 10000)) $((p + 10100))); do
    if port_free "$q"; then say "port $p is taken; using $q instead"; echo "$q"; return; fi
  done
  say "no free port near $p"; exit 1
}

"$ROOT/scripts/install-deps.sh" >&2
"$ROOT/steward" version >/dev/null

if [[ -f $BASE/etcd.pid ]] && [[ -d /proc/$(head -1 "$BASE/etcd.pid") ]]; then
  say "a demo cluster is already running in $BASE: stop it with scripts/demo.sh --down"; exit 1
fi
mkdir -p "$BASE"; chmod 755 "$BASE"
ETCD_PORT=$(pick_port 2379); ETCD_PEER=$(pick_port 2380)
PG_PORTS=($(pick_port 5432) $(pick_port 5433) $(pick_port 5434))
REST_PORTS=($(pick_port 8008) $(pick_port 8009) $(pick_port 8010))
WRITE_PORT=$(pick_port 5500); READ_PORT=$(pick_port 5501); STATS_PORT=$(pick_port 7500)

say "starting etcd on 127.0.0.1:$ETCD_PORT"
setsid etcd --name demo --data-dir "$BASE/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
  --initial-cluster "demo=http://127.0.0.1:$ETCD_PEER" --initial-cluster-state new --logger=zap \
  >"$BASE/etcd.log" 2>&1 </dev/null &
echo $! >"$BASE/etcd.pid"
for _ in $(seq 1 100); do ETCDCTL_API=3 etcdctl --endpoints="127.0.0.1:$ETCD_PORT" endpoint health >/dev/null 2>&1 && break; sleep 0.1; done

for n in 1 2 3; do
  i=$((n - 1)); d="$BASE/node$n"; mkdir -p "$d"; chmod 755 "$d"; chown postgres:postgres "$d" 2>/dev/null || true
  cat >"$d/node.yml" <<YML
scope: demo
namespace: /service/
name: node$n
restapi:
  listen: 127.0.0.1:${REST_PORTS[$i]}
  connect_address: 127.0.0.1:${REST_PORTS[$i]}
etcd3:
  hosts: 127.0.0.1:$ETCD_PORT
bootstrap:
  dcs:
    ttl: 6
    loop_wait: 1
    retry_timeout: 2
    maximum_lag_on_failover: 1048576
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        max_connections: 100
        wal_keep_size: 128MB
  initdb:
    - encoding: UTF8
    - locale: C
postgresql:
  listen: 127.0.0.1:${PG_PORTS[$i]}
  connect_address: 127.0.0.1:${PG_PORTS[$i]}
  data_dir: $d/data
  bin_dir: /usr/lib/postgresql/15/bin
  pgpass: $d/pgpass
  authentication:
    superuser: {username: postgres, password: postgres}
    replication: {username: replicator, password: rep-pass}
    rewind: {username: rewind_user, password: rewind-pass}
  pg_hba:
    - local all all trust
    - host replication replicator 127.0.0.1/32 scram-sha-256
    - host all all 127.0.0.1/32 scram-sha-256
  parameters:
    unix_socket_directories: $d
tags:
  nofailover: false
  noloadbalance: false
YML
  env -u PGPASSWORD -u PGUSER -u PGHOST -u PGPORT -u PGDATABASE setsid "$ROOT/steward" node -c "$d/node.yml" >>"$d/agent.log" 2>&1 </dev/null &
  echo $! >"$d/agent.pid"
done
say "started 3 agents; waiting for a leader and two streaming replicas (logs: $BASE/node*/agent.log)"

T0=$SECONDS
while :; do
  leaders=0; streaming=0
  for i in 0 1 2; do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${REST_PORTS[$i]}/leader") == 200 ]] && leaders=$((leaders + 1))
    curl -s "http://127.0.0.1:${REST_PORTS[$i]}/patroni" | grep -q '"replication_state":"streaming"' && streaming=$((streaming + 1))
  done
  printf '\r  %3ds: leaders %d, streaming replicas %d ' $((SECONDS - T0)) $leaders $streaming >&2
  [[ $leaders == 1 && $streaming == 2 ]] && break
  if ((SECONDS - T0 > 180)); then say ""; say "the cluster did not come up in 180 s; see $BASE/node*/agent.log"; down; exit 1; fi
  sleep 0.5
done
say ""
cat >"$BASE/router.yml" <<YML
scope: demo
namespace: /service/
etcd3:
  hosts: 127.0.0.1:$ETCD_PORT
write:
  listen: 127.0.0.1:$WRITE_PORT
  hold_timeout: 5
read:
  listen: 127.0.0.1:$READ_PORT
  max_lag: 1MB
stats:
  listen: 127.0.0.1:$STATS_PORT
YML
setsid "$ROOT/steward" router -c "$BASE/router.yml" >>"$BASE/router.log" 2>&1 </dev/null &
echo $! >"$BASE/router.pid"
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$STATS_PORT/stats.json" >/dev/null && break; sleep 0.2; done
"$ROOT/steward" list --etcd "127.0.0.1:$ETCD_PORT" --scope demo
cat <<TXT
Connect (password: postgres):
  psql -h 127.0.0.1 -p $WRITE_PORT -U postgres      # writes: always the leader
  psql -h 127.0.0.1 -p $READ_PORT -U postgres      # reads: the replicas
Router stats: http://127.0.0.1:$STATS_PORT/
REST: curl http://127.0.0.1:${REST_PORTS[0]}/patroni
List: ./steward list --etcd 127.0.0.1:$ETCD_PORT --scope demo
Data and logs: $BASE
TXT

if [[ $MODE == --detach ]]; then say "running in the background; stop with: scripts/demo.sh --down"; exit 0; fi
trap 'say ""; down; exit 0' INT TERM
say "running; press Ctrl-C to stop everything"
while :; do sleep 1; done
