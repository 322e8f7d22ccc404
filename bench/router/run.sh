#!/usr/bin/env bash
# Router data-path benchmark: PostgreSQL 15 direct vs the Steward engines vs HAProxy, with pgbench.
# Env: BENCH_SECONDS (default 20), BENCH_REPS (default 2), BENCH_TARGETS (comma list, default all), BENCH_MODES (select,tpcb).
set -euo pipefail
cd "$(dirname "$0")/../.."
# inline socket completions help the SocketCopyEngine (read at process start)
export DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1
dotnet build -c Release bench/Steward.Bench -v q -nologo
exec dotnet run -c Release --no-build --project bench/Steward.Bench -- router "$@"
