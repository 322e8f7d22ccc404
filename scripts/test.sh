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
#              STEWARD_TEST_TIMEOUT (the integration tests, or the whole run without native; default 26m),
#              STEWARD_UNIT_TIMEOUT (the unit tests and the simulation before the integration tests; default 15m),
#              STEWARD_TEST_HANG_TIMEOUT (per test, default 10m),
#              STEWARD_NATIVE_SMOKE (auto (default): with the full suite; 0: off; 1: always — see below),
#              STEWARD_NATIVE_BINARY, STEWARD_NATIVE_ROUTER_BINARY (package these native executables instead of
#              publishing them).
#
# Native (issue 13; on by default for the full suite): the native AOT package that users install (scripts/package.sh)
# is built while the unit tests and the simulation run; then the integration tests run with the installed native
# /usr/bin/steward as every agent, router, fence supervisor and CLI process (STEWARD_TEST_BINARY, STEWARD_TEST_DEB).
# A package that fails to build fails the run (the integration tests then run with `dotnet steward.dll`).
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
step "dependencies"
scripts/install-deps.sh "${deps_args[@]}" || fail "dependencies are missing (see above)"

step "dotnet restore"
dotnet restore Steward.slnx -nologo || fail "dotnet restore"

step "dotnet build -c Release"
dotnet build Steward.slnx -c Release --no-restore -nologo || fail "dotnet build (errors above)"

rm -rf "$RESULTS"
mkdir -p "$RESULTS"
NATIVE_DIR=$RESULTS/native
export STEWARD_MEASUREMENTS="$RESULTS/measurements.txt"

# run_tests TARGET TIMEOUT ARGS...: dotnet test in the background (so that SIGINT/SIGTERM to this script stop it too;
# timeout puts dotnet in its own process group and kills all of it on expiry); sets rc.
interrupted=0
test_pid=""
native_pid=""
stop_all() { [[ -n $test_pid ]] && kill -TERM "$test_pid" 2>/dev/null; [[ -n $native_pid ]] && kill -TERM -- "-$native_pid" 2>/dev/null; }
trap 'interrupted=1; stop_all' INT TERM
run_tests() {
    local what=$1 limit=$2; shift 2
    timeout -k 60s "$limit" \
        dotnet test "$what" -c Release --no-build --no-restore -nologo \
            --logger "console;verbosity=minimal" --logger trx --results-directory "${RESULTS_DIR:-$RESULTS}" \
            --blame-hang-timeout "$HANG_TIMEOUT" --blame-hang-dump-type mini "$@" &
    test_pid=$!
    wait "$test_pid"; rc=$?
    # wait returns early (>128) when a trapped signal arrives; wait for the real exit.
    while kill -0 "$test_pid" 2>/dev/null; do wait "$test_pid"; rc=$?; done
    test_pid=""
    ((interrupted)) && fail "interrupted (the test run was stopped)"
    return 0
}

native_problem=""
if ((native)); then
    # The package users install is built first, while the unit tests and the simulation (in-process, no binary)
    # run; then every integration test runs with the installed native /usr/bin/steward as the agents, the router,
    # the fence supervisors and the CLI: the binary that ships is the one the suite checks (and it starts in
    # milliseconds where `dotnet steward.dll` spends a second of CPU, which pays for most of its build).
    mkdir -p "$NATIVE_DIR"
    step "native AOT package (scripts/package.sh; log: $NATIVE_DIR/package.log), alongside the unit tests and the simulation"
    package_args=(--out "$NATIVE_DIR/dist")
    [[ -n ${STEWARD_NATIVE_BINARY:-} ]] && package_args+=(--binary "$STEWARD_NATIVE_BINARY")
    [[ -n ${STEWARD_NATIVE_ROUTER_BINARY:-} ]] && package_args+=(--router-binary "$STEWARD_NATIVE_ROUTER_BINARY")
    # Its own session (and process group), so that an interrupted run stops the publish too.
    setsid scripts/package.sh "${package_args[@]}" >"$NATIVE_DIR/deb.txt" 2>"$NATIVE_DIR/package.log" </dev/null &
    native_pid=$!
    native_t0=$SECONDS

    # A few integration tests run with `dotnet steward.dll` meanwhile too (what ./steward and scripts/demo.sh run in a
    # checkout): the demo stack, the REST API, and the fence supervisor started as `dotnet steward.dll fence-supervisor`.
    # Their results are listed as "[dotnet steward.dll] …".
    step "dotnet test Steward.slnx (unit tests, the simulation, and a few integration tests with dotnet steward.dll)"
    RESULTS_DIR=$RESULTS/jit run_tests Steward.slnx "${STEWARD_UNIT_TIMEOUT:-15m}" --filter "FullyQualifiedName!~Steward.IntegrationTests\
|FullyQualifiedName~DemoCommandTests.Demo_starts_the_stack\
|FullyQualifiedName~ClusterLifecycleTests.Rest_endpoints_answer\
|FullyQualifiedName~FenceTests.Leader_agent_killed_alone"
    rc_unit=$rc

    step "waiting for the native package (started $((SECONDS - native_t0)) s ago)"
    wait "$native_pid"; prc=$?
    while kill -0 "$native_pid" 2>/dev/null; do wait "$native_pid"; prc=$?; done
    native_pid=""
    ((interrupted)) && fail "interrupted (the test run was stopped)"
    deb=$(tail -n 1 "$NATIVE_DIR/deb.txt" 2>/dev/null)
    echo "package.sh exited $prc after $((SECONDS - native_t0)) s: ${deb:-no .deb}"
    native_bin=""
    if ((prc != 0)) || [[ $deb != *.deb || ! -f $deb ]]; then
        tail -n 30 "$NATIVE_DIR/package.log"
        native_problem="the native AOT package was not built (scripts/package.sh exited $prc; log: $NATIVE_DIR/package.log); the integration tests ran with dotnet steward.dll"
    elif ! dpkg -x "$deb" "$NATIVE_DIR/root"; then
        native_problem="dpkg -x $deb failed; the integration tests ran with dotnet steward.dll"
    else
        native_bin=$NATIVE_DIR/root/usr/bin/steward
        echo "installed: $("$native_bin" --version) ($(du -h "$deb" | cut -f1) .deb)"
        export STEWARD_TEST_BINARY=$native_bin STEWARD_TEST_DEB=$deb
    fi

    step "dotnet test the integration tests${native_bin:+ (every steward process: the installed native $native_bin)}"
    run_tests test/Steward.IntegrationTests/Steward.IntegrationTests.csproj "$TIMEOUT"
    ((rc == 0)) && rc=$rc_unit
else
    step "dotnet test $target ${filter_args[*]}"
    run_tests "$target" "$TIMEOUT" "${filter_args[@]}"
fi
trap - INT TERM

# --- tally from every TRX ----------------------------------------------------
mapfile -d '' trx < <(find "$RESULTS" -name '*.trx' -type f -print0 2>/dev/null)
echo
if ((${#trx[@]} == 0)); then
    ((rc == 124)) && fail "dotnet test timed out after $TIMEOUT and wrote no TRX"
    fail "dotnet test wrote no TRX file (exit code $rc)"
fi

# One line per result: outcome<TAB>test name (attribute values are XML-escaped, so
# a UnitTestResult start tag never contains a raw '>'); PREFIX goes before each name.
results_of() { # PREFIX FILE...
    local prefix=$1; shift
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
}

# A test that hung or crashed its test host has no result in the TRX; the blame collector's Sequence file marks it
# Completed="False". Count it as aborted (the TRX's In/ folder holds a copy of each file: sort -u).
aborted_of() { # DIR
    local seq
    mapfile -d '' seq < <(find "$1" -name 'Sequence_*.xml' -type f -print0 2>/dev/null)
    ((${#seq[@]})) || return 0
    for f in "${seq[@]}"; do
        grep -o '<Test [^>]*Completed="False"[^>]*>' "$f" \
            | sed -n 's/.* DisplayName="\([^"]*\)".*/Aborted\t\1 (hang or test host crash)/p' \
            | if [[ $f == "$RESULTS/jit/"* ]]; then sed 's/^Aborted\tSteward\.IntegrationTests\./Aborted\t[dotnet steward.dll] Steward.IntegrationTests./'; else cat; fi
    done | sort -u
}
results=""
for f in "${trx[@]}"; do
    prefix=""
    [[ $f == "$RESULTS/jit/"* ]] && grep -q 'Steward.IntegrationTests.dll' "$f" && prefix="[dotnet steward.dll] "
    results+=$(results_of "$prefix" "$f")$'\n'
done
results+=$(aborted_of "$RESULTS")

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
