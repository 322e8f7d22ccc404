#!/usr/bin/env bash
# Issue 15, long variant of HostileInputTests: the same REST fuzz pass and malformed-etcd checks, with the fuzz running
# STEWARD_FUZZ_SECONDS (default 120) and a seed of your choice (STEWARD_FUZZ_SEED, default the CI one). Needs root (the
# test starts PostgreSQL as the postgres user). Prints the test's MEASURE lines.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
export STEWARD_FUZZ_SECONDS="${STEWARD_FUZZ_SECONDS:-120}"
export STEWARD_FUZZ_SEED="${STEWARD_FUZZ_SEED:-20261201}"
dotnet build "$ROOT/test/Steward.IntegrationTests" -nologo -v q
dotnet test "$ROOT/test/Steward.IntegrationTests" --no-build --filter "FullyQualifiedName~HostileInputTests" \
    --logger "console;verbosity=detailed" | grep -E "MEASURE|Passed|Failed|server error" || true
