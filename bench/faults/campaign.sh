#!/usr/bin/env bash
# Fault campaign (issue 11; docs/campaign.md): three hosts in network namespaces (etcd member + PostgreSQL 15 + agent
# each), the router in a fourth, clients writing through it; N faults from a seeded schedule; the history checked for
# lost acknowledged writes, split brain and list-append anomalies; one table printed and appended to
# bench/faults/results-campaign-<mode>.txt.
#
#   sudo bench/faults/campaign.sh [--faults 100] [--mode sync|async] [--seed S] [--hold 4-10] [--kinds a,b] ...
#   (every option: bench/faults/campaign.sh --help)
#
# Needs root. Whatever the run creates (processes, namespaces, veths, bridge) is removed at the end, also after a
# failure or Ctrl-C: the program cleans up itself, and this script's trap removes what a crashed program left
# (by the PIDs and names it recorded in its run directory; never by process name).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [[ " $* " == *" --help "* || " $* " == *" -h "* ]]; then sed -n '2,12p' "$0"; fi
if [[ $(id -u) -ne 0 ]]; then
  echo "campaign.sh needs root: it creates network namespaces, veth pairs and a bridge, and runs PostgreSQL as the postgres user" >&2
  exit 2
fi

mode=async
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do [[ ${args[i]} == --mode ]] && mode="${args[i+1]:-async}"; done
dir="$(mktemp -d /tmp/steward-campaign-XXXXXX)"
chmod 755 "$dir"

cleanup() {
  local pid ns
  # Processes first (by PID): those the program started, then anything left inside our namespaces.
  if [[ -f $dir/pids ]]; then
    while read -r pid; do [[ -d /proc/$pid ]] && kill -CONT "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null; done <"$dir/pids" || true
  fi
  if [[ -f $dir/namespaces ]]; then
    while read -r ns; do
      for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -CONT "$pid" 2>/dev/null; kill -KILL "$pid" 2>/dev/null || true; done
    done <"$dir/namespaces"
    sleep 1
    while read -r ns; do ip netns del "$ns" 2>/dev/null || true; done <"$dir/namespaces"
  fi
  if [[ -f $dir/bridge ]]; then ip link del "$(cat "$dir/bridge")" 2>/dev/null || true; fi
}
trap cleanup EXIT

dotnet build "$ROOT/bench/Steward.Campaign" -c Release -v q -nologo >&2
status=0
dotnet "$ROOT/bench/Steward.Campaign/bin/Release/net10.0/Steward.Campaign.dll" --dir "$dir" \
  --results "${CAMPAIGN_RESULTS:-$ROOT/bench/faults/results-campaign-$mode.txt}" "$@" || status=$?
echo "exit $status (0: no violation; 1: violations, listed above; 2: could not run); logs in $dir" >&2
exit "$status"
