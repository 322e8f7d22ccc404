#!/usr/bin/env bash
# bench/footprint/run.sh — what Steward costs at idle, side by side with Patroni + HAProxy, in one run on this machine.
#
# Starts a 3-node Steward cluster (`steward demo --detach`: etcd, 3 agents each with PostgreSQL 15, the router) from
# the native AOT binary, and a 3-node Patroni cluster (its own etcd, PostgreSQL 15, HAProxy with Patroni's stock
# checks), lets both sit idle, then prints:
#   VmRSS of each agent (alone, and with its fence supervisor) against each Patroni process;
#   VmRSS of the router against HAProxy (and PSS: shared pages counted by share);
#   wall and CPU time of `steward list` / `steward version` against `patronictl list` / `patronictl version`.
# Both sides are stopped by PID at the end (also on Ctrl-C), and their directory removed.
#
# Usage: bench/footprint/run.sh [--binary FILE] [--jit] [--idle SECONDS] [--runs N] [--out FILE] [--keep]
#   --binary FILE  the Steward executable to measure (default: publish the native AOT build, timed)
#   --router-binary FILE  with --binary: the router-only executable (-p:StewardRouterOnly=true) that `steward router`
#                  hands over to; without it the router runs inside the steward executable
#   --jit          measure the framework-dependent build (`dotnet steward.dll`) instead: the "before" figures
#                  (with --binary DIR/steward.dll: that build, e.g. ./steward's /var/tmp/steward-build/*/current)
#   --idle S       seconds both clusters sit idle before sampling (default 60); RSS is sampled 10 times, 2 s apart
#   --runs N       CLI timing runs (default 20; median, min, max)
#   --out FILE     also write the table to FILE (e.g. bench/footprint/results.txt)
# Environment passed to the Steward processes is this shell's: e.g. DOTNET_GCGen0MaxBudget=400000 to try a setting
# (NativeAOT reads DOTNET_GC* as hex WITHOUT 0x, and the names are case-sensitive: a wrong one is silently ignored).
# Needs root (PostgreSQL runs as `postgres`), etcd, PostgreSQL 15, haproxy, GNU time, and Debian's `patroni` package
# (installed here when missing: apt-get install patroni python3-etcd3 python3-psycopg2).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
HERE=$ROOT/bench/footprint
PGBIN=/usr/lib/postgresql/15/bin
idle=60 runs=20 out="" keep=0 binary="" router_binary="" jit=0
while (($#)); do
    case $1 in
        --binary) binary=$(readlink -f "$2"); shift ;;
        --router-binary) router_binary=$(readlink -f "$2"); shift ;;
        --jit) jit=1 ;;
        --idle) idle=$2; shift ;;
        --runs) runs=$2; shift ;;
        --out) out=$2; shift ;;
        --keep) keep=1 ;;
        -h|--help) sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

say() { echo "footprint: $*" >&2; }
die() { echo "footprint: ERROR: $*" >&2; exit 1; }
((EUID == 0)) || die "run as root (PostgreSQL and Patroni run as postgres through setpriv)"
for t in etcd haproxy curl setpriv /usr/bin/time; do command -v $t >/dev/null || die "$t not found (scripts/install-deps.sh)"; done
[[ -x $PGBIN/postgres ]] || die "PostgreSQL 15 not found (scripts/install-deps.sh)"
if ! command -v patroni >/dev/null || ! command -v patronictl >/dev/null; then
    say "installing Debian's patroni (apt-get install patroni python3-etcd3 python3-psycopg2)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends patroni python3-etcd3 python3-psycopg2 >&2 \
        || die "could not install patroni"
fi

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
BASE=$(mktemp -d /tmp/steward-footprint.XXXXXX)
chmod 0755 "$BASE"

# --- the Steward program -------------------------------------------------------------------------------------------
build_note=""
if ((jit)) && [[ -n $binary ]]; then
    [[ $binary == *.dll ]] || die "--jit --binary wants a steward.dll (a framework-dependent build)"
    cp -r "$(dirname "$binary")" "$BASE/app" && chmod -R go+rX "$BASE/app"
    STEWARD=(dotnet "$BASE/app/steward.dll")
    variant="Steward $("${STEWARD[@]}" version | awk '{print $2}') (JIT, dotnet steward.dll)"
elif ((jit)); then
    say "framework-dependent publish…"
    t0=$(date +%s.%N)
    dotnet publish "$ROOT/src/Steward/Steward.csproj" -c Release --no-self-contained -nologo \
        --artifacts-path "$ROOT/artifacts/footprint-jit" -o "$BASE/app" >"$BASE/publish.log" 2>&1 || { tail -n 30 "$BASE/publish.log" >&2; die "publish failed"; }
    build_note="framework-dependent publish: $(printf '%.0f' "$(echo "$(date +%s.%N) - $t0" | bc)") s"
    chmod -R go+rX "$BASE/app"
    STEWARD=(dotnet "$BASE/app/steward.dll")
    variant="Steward $("${STEWARD[@]}" version | awk '{print $2}') (JIT, dotnet steward.dll)"
else
    if [[ -z $binary ]]; then
        command -v clang >/dev/null || die "clang not found: apt-get install clang zlib1g-dev (scripts/install-deps.sh)"
        say "native AOT publish (takes minutes on 2 cores)…"
        t0=$(date +%s.%N)
        dotnet publish "$ROOT/src/Steward/Steward.csproj" -c Release -r linux-x64 -nologo \
            --artifacts-path "$ROOT/artifacts/footprint" -o "$ROOT/artifacts/footprint/publish" >"$BASE/publish.log" 2>&1 \
            || { grep -E 'error|warning' "$BASE/publish.log" | sort -u | tail -n 30 >&2; die "publish failed"; }
        dotnet publish "$ROOT/src/Steward/Steward.csproj" -c Release -r linux-x64 -nologo -p:StewardRouterOnly=true \
            --artifacts-path "$ROOT/artifacts/footprint-router" -o "$ROOT/artifacts/footprint-router/publish" >>"$BASE/publish.log" 2>&1 \
            || { grep -E 'error|warning' "$BASE/publish.log" | sort -u | tail -n 30 >&2; die "publish of the router-only executable failed"; }
        build_note="native AOT publish (steward and steward-router): $(printf '%.0f' "$(echo "$(date +%s.%N) - $t0" | bc)") s"
        binary=$ROOT/artifacts/footprint/publish/steward
        router_binary=$ROOT/artifacts/footprint-router/publish/steward
    fi
    # Laid out as the package installs them: `steward router` hands over to ../lib/steward/steward-router when it is there.
    install -D -m 0755 "$binary" "$BASE/usr/bin/steward"
    [[ -n $router_binary ]] && install -D -m 0755 "$router_binary" "$BASE/usr/lib/steward/steward-router"
    STEWARD=("$BASE/usr/bin/steward")
    variant="Steward $("${STEWARD[@]}" version | awk '{print $2}') (native AOT, $(du -m "$binary" | cut -f1) MB$([[ -n $router_binary ]] && echo "; router-only executable $(du -m "$router_binary" | cut -f1) MB"))"
fi
[[ -n $build_note ]] && say "$build_note"

# --- teardown, by PID only -----------------------------------------------------------------------------------------
# stop PIDFILE|PID EXPECTED-CMDLINE-SUBSTRING SIGNAL: signals the process only while its cmdline still matches.
stop_pid() {
    local p=$1 pat=$2 sig=${3:-TERM}
    [[ -n $p && -r /proc/$p/cmdline ]] || return 0
    tr '\0' ' ' </proc/"$p"/cmdline | grep -q -- "$pat" || return 0
    kill -"$sig" "$p" 2>/dev/null || return 0
    for _ in $(seq 300); do [[ -d /proc/$p ]] || return 0; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
}
cleanup() {
    set +e
    trap - EXIT INT TERM
    say "stopping both clusters…"
    if [[ -f $BASE/steward-demo/demo.json ]]; then
        "${STEWARD[@]}" demo --down --dir "$BASE/steward-demo" >"$BASE/demo-down.log" 2>&1
    fi
    [[ -f $BASE/haproxy.pid ]] && stop_pid "$(cat "$BASE/haproxy.pid")" haproxy
    local jobs=() n
    for n in 1 2 3; do [[ -f $BASE/pg$n/patroni.pid ]] && { stop_pid "$(cat "$BASE/pg$n/patroni.pid")" patroni TERM & jobs+=($!); }; done
    ((${#jobs[@]})) && wait "${jobs[@]}"
    jobs=()
    for n in 1 2 3; do [[ -f $BASE/pg$n/data/postmaster.pid ]] && { stop_pid "$(head -1 "$BASE/pg$n/data/postmaster.pid")" postgres INT & jobs+=($!); }; done
    ((${#jobs[@]})) && wait "${jobs[@]}"
    [[ -f $BASE/etcd.pid ]] && stop_pid "$(cat "$BASE/etcd.pid")" etcd
    if ((keep)); then say "kept $BASE"; else rm -rf "$BASE"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- free ports ----------------------------------------------------------------------------------------------------
port_free() { ! ss -Htln "sport = :$1" | grep -q .; }
# A block of 60 free ports below the ephemeral range, from a random start (several runs may share the machine).
block_from() {
    local start
    for _ in $(seq 200); do
        start=$((20000 + (RANDOM % 120) * 100))
        local ok=1
        for p in $(seq "$start" $((start + 59))); do port_free "$p" || { ok=0; break; }; done
        ((ok)) && { echo "$start"; return 0; }
    done
    die "no free block of 60 ports"
}
SB=$(block_from)   # Steward: demo's layout from SB (etcd +0/+1, router +2/+3, stats +4, PostgreSQL +10…, REST +40…)
PB=$(block_from)   # Patroni: etcd +0/+1, HAProxy write +2, read +3, stats +4, PostgreSQL +10…, REST +40…
[[ $PB != "$SB" ]] || PB=$(block_from)

# --- Steward cluster -----------------------------------------------------------------------------------------------
say "starting Steward: ${STEWARD[*]} demo --detach (ports from $SB)"
t0=$(date +%s.%N)
"${STEWARD[@]}" demo --detach --dir "$BASE/steward-demo" --base-port "$SB" >"$BASE/demo.log" 2>&1 \
    || { cat "$BASE/demo.log" >&2; die "steward demo failed"; }
say "Steward healthy after $(printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)") s"
demo_pid() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(next(p["pid"] for p in d["processes"] if p["name"]==sys.argv[2]))' "$BASE/steward-demo/demo.json" "$1"; }
supervisor_of() { # the agent's child running fence-supervisor
    local c
    for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
        tr '\0' ' ' </proc/"$c"/cmdline 2>/dev/null | grep -q fence-supervisor && { echo "$c"; return 0; }
    done
    echo ""
}

# --- Patroni cluster -----------------------------------------------------------------------------------------------
say "starting Patroni 3 nodes + HAProxy (ports from $PB)"
t0=$(date +%s.%N)
setsid etcd --name fp --data-dir "$BASE/etcd" \
    --listen-client-urls "http://127.0.0.1:$PB" --advertise-client-urls "http://127.0.0.1:$PB" \
    --listen-peer-urls "http://127.0.0.1:$((PB + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((PB + 1))" \
    --initial-cluster "fp=http://127.0.0.1:$((PB + 1))" --initial-cluster-state new >"$BASE/etcd.log" 2>&1 </dev/null &
echo $! >"$BASE/etcd.pid"
for _ in $(seq 300); do curl -fs "http://127.0.0.1:$PB/health" >/dev/null 2>&1 && break; sleep 0.1; done
for n in 1 2 3; do
    mkdir -p "$BASE/pg$n"
    sed -e "s#@NAME@#pg$n#g" -e "s#@PGPORT@#$((PB + 9 + n))#g" -e "s#@RESTPORT@#$((PB + 39 + n))#g" \
        -e "s#@ETCD@#$PB#g" -e "s#@BASE@#$BASE#g" "$HERE/patroni.yml.tmpl" >"$BASE/pg$n/patroni.yml"
    chown -R postgres:postgres "$BASE/pg$n"
    # $! must be patroni itself (setsid and setpriv exec it): no list or subshell around the background command.
    env -C "$BASE" -u PGPASSWORD -u PGUSER -u PGDATABASE -u PGHOST HOME="$BASE/pg$n" \
        setsid setpriv --reuid=postgres --regid=postgres --init-groups \
        patroni "$BASE/pg$n/patroni.yml" >>"$BASE/pg$n/patroni.log" 2>&1 </dev/null &
    echo $! >"$BASE/pg$n/patroni.pid"
done
sed -e "s#@STATS@#$((PB + 4))#" -e "s#@WRITE@#$((PB + 2))#" -e "s#@READ@#$((PB + 3))#" \
    -e "s#@PG1@#$((PB + 10))#g" -e "s#@PG2@#$((PB + 11))#g" -e "s#@PG3@#$((PB + 12))#g" \
    -e "s#@REST1@#$((PB + 40))#g" -e "s#@REST2@#$((PB + 41))#g" -e "s#@REST3@#$((PB + 42))#g" \
    "$HERE/haproxy.cfg.tmpl" >"$BASE/haproxy.cfg"
setsid haproxy -f "$BASE/haproxy.cfg" -db >"$BASE/haproxy.log" 2>&1 </dev/null &
echo $! >"$BASE/haproxy.pid"
patroni_healthy() { # one leader whose /patroni lists two streaming replicas
    local leaders=0 streaming=0 n
    for n in 1 2 3; do
        if [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$((PB + 39 + n))/leader") == 200 ]]; then
            leaders=$((leaders + 1))
            streaming=$(curl -s "http://127.0.0.1:$((PB + 39 + n))/patroni" | grep -o '"state": *"streaming"' | wc -l)
        fi
    done
    ((leaders == 1 && streaming == 2))
}
for _ in $(seq 600); do patroni_healthy && break; sleep 0.5; done
patroni_healthy || die "the Patroni cluster did not become healthy in 300 s (logs: $BASE/pg*/patroni.log; --keep keeps them)"
say "Patroni healthy after $(printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)") s"

# --- idle, then sample ---------------------------------------------------------------------------------------------
say "both clusters up; idle for $idle s"
sleep "$idle"
rss_kb() { awk '/^VmRSS:/ { print $2 }' /proc/"$1"/status 2>/dev/null || echo 0; }
# PSS: pages shared with other processes (the binary or libpython mapped by all three agents) counted by share
pss_kb() { awk '/^Pss:/ { print $2 }' /proc/"$1"/smaps_rollup 2>/dev/null || echo 0; }
declare -A samples=()
agents=("$(demo_pid node1)" "$(demo_pid node2)" "$(demo_pid node3)")
router=$(demo_pid router)
sups=()
for a in "${agents[@]}"; do sups+=("$(supervisor_of "$a")"); done
patronis=("$(cat "$BASE/pg1/patroni.pid")" "$(cat "$BASE/pg2/patroni.pid")" "$(cat "$BASE/pg3/patroni.pid")")
haproxy=$(cat "$BASE/haproxy.pid")
for i in $(seq 10); do
    for k in 0 1 2; do
        samples[agent$k]+="$(rss_kb "${agents[$k]}") "
        samples[sup$k]+="$( [[ -n ${sups[$k]} ]] && rss_kb "${sups[$k]}" || echo 0) "
        samples[patroni$k]+="$(rss_kb "${patronis[$k]}") "
        samples[agentpss$k]+="$(pss_kb "${agents[$k]}") "
        samples[patronipss$k]+="$(pss_kb "${patronis[$k]}") "
    done
    samples[router]+="$(rss_kb "$router") "
    samples[haproxy]+="$(rss_kb "$haproxy") "
    samples[routerpss]+="$(pss_kb "$router") "
    samples[haproxypss]+="$(pss_kb "$haproxy") "
    sleep 2
done
# median and max of a list of kB values, printed in MB
stat_mb() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{ v[NR] = $1 } END { printf "%5.1f MB (max %5.1f)", v[int((NR + 1) / 2)] / 1024, v[NR] / 1024 }'; }
sum_lists() { paste -d+ <(tr ' ' '\n' <<<"$1" | grep .) <(tr ' ' '\n' <<<"$2" | grep .) | bc | tr '\n' ' '; }

# --- CLI timings ---------------------------------------------------------------------------------------------------
node1_cfg=$BASE/steward-demo/node1/node.yml
time_runs() { # N CMD... → "median s (min … max), cpu median s": wall time, and user+sys CPU time (GNU time)
    local n=$1; shift
    local t=() c=()
    for _ in $(seq "$n"); do
        local s e
        s=$(date +%s%N); /usr/bin/time -f '%U %S' -o "$BASE/time.out" "$@" >/dev/null 2>&1 || true; e=$(date +%s%N)
        t+=($(((e - s) / 1000000)))
        c+=("$(awk '{ printf "%d", ($1 + $2) * 1000 }' "$BASE/time.out")")
    done
    printf '%s\n' "${t[@]}" | sort -n | awk '{ v[NR] = $1 } END { printf "%5.3f s (min %5.3f, max %5.3f)", v[int((NR + 1) / 2)] / 1000, v[1] / 1000, v[NR] / 1000 }'
    printf '%s\n' "${c[@]}" | sort -n | awk '{ v[NR] = $1 } END { printf ", cpu %5.3f s", v[int((NR + 1) / 2)] / 1000 }'
}
# A first list (also warms the page cache); a loaded machine may need a second try.
for _ in 1 2 3 4 5; do "${STEWARD[@]}" list -c "$node1_cfg" >"$BASE/list.txt" 2>&1 && break; sleep 1; done
grep -q Leader "$BASE/list.txt" || { cat "$BASE/list.txt" >&2; die "steward list failed 5 times"; }
steward_list=$(time_runs "$runs" "${STEWARD[@]}" list -c "$node1_cfg")
steward_version=$(time_runs "$runs" "${STEWARD[@]}" version)
pruns=$(( runs < 5 ? runs : 5 ))
patroni_list=$(time_runs "$pruns" patronictl -c "$BASE/pg1/patroni.yml" list)
patroni_version=$(time_runs "$pruns" patronictl version)

# --- report --------------------------------------------------------------------------------------------------------
{
    echo "bench/footprint — $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
    echo "idle $idle s, VmRSS median of 10 samples 2 s apart (max); CLI: median of $runs runs (patronictl: $pruns)"
    echo "Steward: $variant; Patroni $(patronictl version 2>/dev/null | awk '{print $NF}'), $(haproxy -v | head -1 | awk '{print "HAProxy", $3}')"
    [[ -n $build_note ]] && echo "$build_note"
    env | grep -E '^DOTNET_' | grep -vE '^DOTNET_(CLI_|NOLOGO|GENERATE_ASPNET|SKIP_FIRST)' | sed 's/^/setting: /' || true
    echo
    printf '%-30s %-32s %-32s\n' "" "Steward" "Patroni / HAProxy"
    for k in 0 1 2; do
        printf '%-30s %-32s %-32s\n' "agent $((k + 1)) (node$((k + 1)) / pg$((k + 1)))" "$(stat_mb "${samples[agent$k]}")" "$(stat_mb "${samples[patroni$k]}")"
    done
    for k in 0 1 2; do
        printf '%-30s %-32s %-32s\n' "  + fence supervisor" "$(stat_mb "$(sum_lists "${samples[agent$k]}" "${samples[sup$k]}")")" ""
    done
    printf '%-30s %-32s %-32s\n' "router / HAProxy" "$(stat_mb "${samples[router]}")" "$(stat_mb "${samples[haproxy]}")"
    for k in 0 1 2; do
        printf '%-30s %-32s %-32s\n' "PSS agent $((k + 1)) / pg$((k + 1))" "$(stat_mb "${samples[agentpss$k]}")" "$(stat_mb "${samples[patronipss$k]}")"
    done
    printf '%-30s %-32s %-32s\n' "PSS router / HAProxy" "$(stat_mb "${samples[routerpss]}")" "$(stat_mb "${samples[haproxypss]}")"
    echo
    printf '%-10s %-48s %-48s\n' "" "steward" "patronictl"
    printf '%-10s %-48s %-48s\n' "list" "$steward_list" "$patroni_list"
    printf '%-10s %-48s %-48s\n' "version" "$steward_version" "$patroni_version"
    echo
    echo "steward list:"
    cat "$BASE/list.txt"
} | tee "${out:-/dev/null}"
