#!/usr/bin/env bash
# scripts/demo.sh — installs what is missing (scripts/install-deps.sh), then runs `./steward demo` with the same
# arguments: etcd + three Steward agents with PostgreSQL 15 + the router on loopback.
#
#   scripts/demo.sh                start it, print how to connect and the dashboard, keep running until Ctrl-C
#   scripts/demo.sh --detach       start it and return (stop later with --down)
#   scripts/demo.sh --down         stop a demo started with --detach (by the PIDs recorded in its directory)
#   scripts/demo.sh --nodes 5      more agents; see ./steward demo --help for the rest (--dir, --base-port, …)
#
# Everything lives under --dir (default /tmp/steward-demo; $STEWARD_DEMO_DIR is honoured as the default).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ ${1:-} == --help || ${1:-} == -h ]]; then sed -n '2,10p' "$0"; exec "$ROOT/steward" demo --help; fi
[[ ${1:-} == --down ]] || "$ROOT/scripts/install-deps.sh" >&2
args=("$@")
if [[ -n ${STEWARD_DEMO_DIR:-} && " $* " != *" --dir "* ]]; then args+=(--dir "$STEWARD_DEMO_DIR"); fi
exec "$ROOT/steward" demo "${args[@]}"
