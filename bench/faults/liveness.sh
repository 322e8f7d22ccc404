#!/usr/bin/env bash
# Liveness acceptance (issue 9), long variants, on real etcd + PostgreSQL 15 clusters (the integration tests' LivenessTests,
# sized from the environment; CI runs the same tests once and short).
#   STEWARD_LIVENESS_REPS                  kill -9 of the leader under write load, ttl 30 / loop_wait 10 / retry_timeout 10:
#                                          how many times in a row (default 5; CI 2)
#   STEWARD_LIVENESS_WRITERS               writers during those kills (default 8; CI 4)
#   STEWARD_LIVENESS_REPLICA_DOWN_SECONDS  how long a replica stays down before it must stream again without a re-clone
#                                          (default 300; CI 60)
#   LIVENESS_TESTS                         which: "long" (default: the two above), "all" (every LivenessTests test), or a
#                                          test-name fragment (e.g. Three_crash)
# Every figure is a MEASURE line, printed at the end and appended to $STEWARD_MEASUREMENTS (default
# bench/faults/results-liveness.txt); the whole test output goes to $LIVENESS_LOG (default /tmp/steward-liveness.log). Needs root (the tests
# run PostgreSQL as the postgres user) and the 2 cores to itself: nothing else should be running tests meanwhile.
set -euo pipefail
cd "$(dirname "$0")/../.."
export STEWARD_LIVENESS_REPS="${STEWARD_LIVENESS_REPS:-5}"
export STEWARD_LIVENESS_WRITERS="${STEWARD_LIVENESS_WRITERS:-8}"
export STEWARD_LIVENESS_REPLICA_DOWN_SECONDS="${STEWARD_LIVENESS_REPLICA_DOWN_SECONDS:-300}"
export STEWARD_MEASUREMENTS="${STEWARD_MEASUREMENTS:-$PWD/bench/faults/results-liveness.txt}"
log="${LIVENESS_LOG:-/tmp/steward-liveness.log}"

case "${LIVENESS_TESTS:-long}" in
  long) filter="FullyQualifiedName~LivenessTests.Kill_9_of_the_leader_with_ttl_30|FullyQualifiedName~LivenessTests.A_replica_down_longer_than_ttl" ;;
  all) filter="FullyQualifiedName~Steward.IntegrationTests.Cluster.LivenessTests" ;;
  *) filter="FullyQualifiedName~LivenessTests.${LIVENESS_TESTS}" ;;
esac

echo "liveness: reps=$STEWARD_LIVENESS_REPS writers=$STEWARD_LIVENESS_WRITERS replica down=${STEWARD_LIVENESS_REPLICA_DOWN_SECONDS}s filter=$filter" | tee -a "$STEWARD_MEASUREMENTS"
dotnet build test/Steward.IntegrationTests -v q -nologo
status=0
dotnet test test/Steward.IntegrationTests --no-build --filter "$filter" --logger "console;verbosity=detailed" >"$log" 2>&1 || status=$?
grep -E "^ *(MEASURE|Passed|Failed) " "$log" | sed "s/^ *//" | awk '!seen[$0]++' || true
grep -A6 "Error Message" "$log" || true
echo "exit $status; full output in $log, figures appended to $STEWARD_MEASUREMENTS"
exit "$status"
