#!/usr/bin/env bash
# Build Steward and run its tests; the last line of output is always the tally
# "N passed, N failed, N skipped" once tests have run.
#
# Usage:
#   scripts/test.sh                    all tests (installs etcd/PostgreSQL/haproxy if missing)
#   scripts/test.sh unit               only test/Steward.Tests
#   scripts/test.sh integration        only test/Steward.IntegrationTests
#   scripts/test.sh [unit|integration] FILTER...
#                                      extra words are joined into a `dotnet test --filter`
#                                      expression, e.g. scripts/test.sh unit 'FullyQualifiedName~Election'
#
# Exit status is non-zero if deps/restore/build fail, no TRX was written, no test
# ran, any test failed, or the run was aborted (crash, hang, timeout).
#
# Environment: STEWARD_TEST_RESULTS (TRX directory, default ./TestResults),
#              STEWARD_TEST_TIMEOUT (overall, default 26m),
#              STEWARD_TEST_HANG_TIMEOUT (per test, default 10m),
#              STEWARD_NATIVE_SMOKE (auto (default): with the full suite; 0: off; 1: always — see below),
#              STEWARD_NATIVE_BINARY (package this native executable instead of publishing one).
#
# Native smoke (issue 13): the native AOT package that users install (scripts/package.sh) is built in the
# background, at low priority, while the tests run; then the package tests and a few cluster tests run again
# against it (NATIVE_FILTER below), the agents and the CLI being the installed /usr/bin/steward. Their results
# count in the tally as "[native] …".
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
ROOT=$PWD
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

RESULTS=${STEWARD_TEST_RESULTS:-$ROOT/TestResults}
TIMEOUT=${STEWARD_TEST_TIMEOUT:-26m}
HANG_TIMEOUT=${STEWARD_TEST_HANG_TIMEOUT:-10m}

fail() { echo; echo "test.sh: FAILED: $*"; exit 1; }
step() { echo; echo "==> $*"; }

target=Steward.slnx
deps_args=()
case "${1:-}" in
    unit)        target=test/Steward.Tests/Steward.Tests.csproj; deps_args=(--dotnet-only); shift ;;
    integration) target=test/Steward.IntegrationTests/Steward.IntegrationTests.csproj; shift ;;
esac
filter_args=()
(($#)) && filter_args=(--filter "$*")

native=0
case ${STEWARD_NATIVE_SMOKE:-auto} in
    1) native=1 ;;
    auto) [[ $target == Steward.slnx && ${#filter_args[@]} -eq 0 ]] && native=1 ;;
esac
# The package tests (among them a 3-node cluster from the installed binary and a switchover through its CLI), the
# demo stack (agents, fence supervisors, router, writes through the write port), the REST API and /metrics.
NATIVE_FILTER="FullyQualifiedName~Steward.IntegrationTests.Packaging\
|FullyQualifiedName~DemoCommandTests.Demo_starts_the_stack\
|FullyQualifiedName~ClusterLifecycleTests.Rest_endpoints_answer"

step "dependencies"
scripts/install-deps.sh "${deps_args[@]}" || fail "dependencies are missing (see above)"

step "dotnet restore"
dotnet restore Steward.slnx -nologo || fail "dotnet restore"

step "dotnet build -c Release"
dotnet build Steward.slnx -c Release --no-restore -nologo || fail "dotnet build (errors above)"

rm -rf "$RESULTS"
mkdir -p "$RESULTS"
NATIVE_DIR=$RESULTS/native
native_pid=""
if ((native)); then
    mkdir -p "$NATIVE_DIR"
    step "native AOT package in the background (scripts/package.sh, nice 19; log: $NATIVE_DIR/package.log)"
    # Its own process group, so that an interrupted run stops the publish too.
    package_args=(--out "$NATIVE_DIR/dist")
    [[ -n ${STEWARD_NATIVE_BINARY:-} ]] && package_args+=(--binary "$STEWARD_NATIVE_BINARY")
    # With autogroup scheduling (Debian's default) a new session is a new scheduling group, weighed against the tests'
    # as an equal whatever the nice of its processes: the group itself is niced, so that the build takes idle CPU only.
    setsid sh -c 'echo 19 >/proc/self/autogroup 2>/dev/null; exec nice -n 19 "$@"' package \
        scripts/package.sh "${package_args[@]}" >"$NATIVE_DIR/deb.txt" 2>"$NATIVE_DIR/package.log" </dev/null &
    native_pid=$!
    native_t0=$SECONDS
fi

step "dotnet test $target ${filter_args[*]}"
export STEWARD_MEASUREMENTS="$RESULTS/measurements.txt"
# Run in the background so that SIGINT/SIGTERM to this script stop the test run too
# (timeout puts dotnet in its own process group and kills all of it on expiry).
timeout -k 60s "$TIMEOUT" \
    dotnet test "$target" -c Release --no-build --no-restore -nologo \
        --logger "console;verbosity=minimal" --logger trx --results-directory "$RESULTS" \
        --blame-hang-timeout "$HANG_TIMEOUT" --blame-hang-dump-type mini \
        "${filter_args[@]}" &
test_pid=$!
interrupted=0
stop_native() { [[ -n $native_pid ]] && kill -TERM -- "-$native_pid" 2>/dev/null; }
trap 'interrupted=1; kill -TERM "$test_pid" 2>/dev/null; stop_native' INT TERM
wait "$test_pid"; rc=$?
# wait returns early (>128) when a trapped signal arrives; wait for the real exit.
while kill -0 "$test_pid" 2>/dev/null; do wait "$test_pid"; rc=$?; done
((interrupted)) && fail "interrupted (the test run was stopped)"

# --- native smoke ---------------------------------------------------------------
native_problem=""
native_rc=0
if ((native)); then
    step "native AOT smoke: waiting for the package (started $((SECONDS - native_t0)) s ago)"
    t_wait=$SECONDS
    wait "$native_pid"; prc=$?
    while kill -0 "$native_pid" 2>/dev/null; do wait "$native_pid"; prc=$?; done
    ((interrupted)) && fail "interrupted (the test run was stopped)"
    deb=$(tail -n 1 "$NATIVE_DIR/deb.txt" 2>/dev/null)
    echo "package.sh exited $prc after $((SECONDS - native_t0)) s (waited $((SECONDS - t_wait)) s for it): ${deb:-no .deb}"
    if ((prc != 0)) || [[ $deb != *.deb || ! -f $deb ]]; then
        tail -n 30 "$NATIVE_DIR/package.log"
        native_problem="the native AOT package was not built (scripts/package.sh exited $prc; log: $NATIVE_DIR/package.log)"
    elif ! dpkg -x "$deb" "$NATIVE_DIR/root"; then
        native_problem="dpkg -x $deb failed"
    else
        step "native AOT smoke: dotnet test against $NATIVE_DIR/root/usr/bin/steward"
        t_smoke=$SECONDS
        STEWARD_TEST_BINARY=$NATIVE_DIR/root/usr/bin/steward STEWARD_TEST_DEB=$deb \
        timeout -k 60s "${STEWARD_NATIVE_TIMEOUT:-8m}" \
            dotnet test test/Steward.IntegrationTests/Steward.IntegrationTests.csproj -c Release --no-build --no-restore -nologo \
                --logger "console;verbosity=minimal" --logger trx --results-directory "$NATIVE_DIR/trx" \
                --blame-hang-timeout "$HANG_TIMEOUT" --blame-hang-dump-type mini \
                --filter "$NATIVE_FILTER" &
        test_pid=$!
        wait "$test_pid"; native_rc=$?
        while kill -0 "$test_pid" 2>/dev/null; do wait "$test_pid"; native_rc=$?; done
        ((interrupted)) && fail "interrupted (the test run was stopped)"
        echo "native AOT smoke: $((SECONDS - t_smoke)) s of tests"
    fi
fi
trap - INT TERM

# --- tally from every TRX ----------------------------------------------------
mapfile -d '' trx < <(find "$RESULTS" -path "$NATIVE_DIR" -prune -o -name '*.trx' -type f -print0 2>/dev/null)
echo
if ((${#trx[@]} == 0)); then
    ((rc == 124)) && fail "dotnet test timed out after $TIMEOUT and wrote no TRX"
    fail "dotnet test wrote no TRX file (exit code $rc)"
fi

# One line per result: outcome<TAB>test name (attribute values are XML-escaped, so
# a UnitTestResult start tag never contains a raw '>'); PREFIX goes before each name.
# A test that hung or crashed its test host has no result in the TRX; the blame
# collector's Sequence file marks it Completed="False". Count it as aborted.
results_of() { # DIR PREFIX FILE...
    local dir=$1 prefix=$2; shift 2
    cat "$@" | tr '\n' ' ' | grep -o '<UnitTestResult [^>]*>' | awk -v prefix="$prefix" '
    function attr(s, name,   m) {
        if (match(s, " " name "=\"[^\"]*\"")) {
            m = substr(s, RSTART + length(name) + 3, RLENGTH - length(name) - 4)
            gsub(/&quot;/, "\"", m); gsub(/&apos;/, "\047", m); gsub(/&lt;/, "<", m)
            gsub(/&gt;/, ">", m); gsub(/&amp;/, "\\&", m)
            return m
        }
        return ""
    }
    { print attr($0, "outcome") "\t" prefix attr($0, "testName") }'
    local seq
    mapfile -d '' seq < <(find "$dir" -path "$NATIVE_DIR" -prune -o -name 'Sequence_*.xml' -type f -print0 2>/dev/null)
    if ((${#seq[@]})); then
        cat "${seq[@]}" | grep -o '<Test [^>]*Completed="False"[^>]*>' \
            | sed -n "s/.* DisplayName=\"\\([^\"]*\\)\".*/Aborted\t$prefix\\1 (hang or test host crash)/p" | sort -u   # the TRX's In/ folder holds a copy of each file
    fi
}
results=$(results_of "$RESULTS" "" "${trx[@]}")

if ((native)) && [[ -z $native_problem ]]; then
    mapfile -d '' ntrx < <(find "$NATIVE_DIR/trx" -name '*.trx' -type f -print0 2>/dev/null)
    if ((${#ntrx[@]} == 0)); then
        native_problem="the native smoke tests wrote no TRX file (exit code $native_rc)"
    else
        native_results=$(results_of "$NATIVE_DIR/trx" "[native] " "${ntrx[@]}")
        if ! grep -q '^Passed' <<<"$native_results"; then
            native_problem="no native smoke test passed (filter: $NATIVE_FILTER)"
        fi
        results+=$'\n'"$native_results"
    fi
fi

read -r passed failed skipped other < <(printf '%s\n' "$results" | awk -F'\t' '
    NF == 0 || $1 == "" { next }
    $1 == "Passed" { p++; next }
    $1 == "Failed" || $1 == "Error" || $1 == "Timeout" || $1 == "Aborted" { f++; next }
    $1 == "NotExecuted" { s++; next }
    { o++ }   # Inconclusive, Warning, ...: neither passed nor failed
    END { printf "%d %d %d %d\n", p, f, s, o }')

bad=0
((failed > 0)) && bad=1
if ((other > 0)); then
    echo "$other test(s) ended with another outcome (Inconclusive/Warning/...):"
    printf '%s\n' "$results" | awk -F'\t' '$1 != "" && $1 !~ /^(Passed|Failed|Error|Timeout|Aborted|NotExecuted)$/ { print "  " $2 " (" $1 ")" }'
    bad=1
fi
if ((passed + failed + skipped + other == 0)); then
    echo "ERROR: no tests ran${filter_args:+ (filter: $*)}"
    bad=1
fi
if [[ -n $native_problem ]]; then
    echo "ERROR: $native_problem"
    bad=1
elif ((native_rc != 0)); then
    echo "ERROR: the native smoke tests exited with code $native_rc (test host crash, hang or timeout; see above)"
    bad=1
fi
if ((rc == 124 || rc == 137)); then
    echo "ERROR: the test run exceeded the overall timeout of $TIMEOUT and was killed"
    bad=1
elif ((rc != 0)); then
    # dotnet test fails without a failed result when a test host crashed or hung
    # (see the blame output above and the Sequence/dump files in $RESULTS).
    ((failed == 0)) && echo "ERROR: dotnet test exited with code $rc (test host crash, hang or aborted run; see above)"
    bad=1
fi
((bad)) && echo "Results: $RESULTS"
if [[ -s $STEWARD_MEASUREMENTS ]]; then
    echo "Measurements (real etcd + PostgreSQL 15 on this machine):"
    sed 's/^/  /' "$STEWARD_MEASUREMENTS"
fi

# Which tests failed is printed last, just above the tally: a reader who sees only the tail of the output sees them.
if ((failed > 0)); then
    echo "Failed tests:"
    printf '%s\n' "$results" | awk -F'\t' '$1 ~ /^(Failed|Error|Timeout|Aborted)$/ { print "  " $2 " (" $1 ")" }'
fi
echo "$passed passed, $failed failed, $skipped skipped"
exit "$bad"
