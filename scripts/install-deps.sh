#!/usr/bin/env bash
# Install what Steward's build and tests need, on Debian 12. Idempotent: when
# everything is present it changes nothing and needs no network.
#
#   needs: .NET 10 SDK (checked only, never installed)
#          PostgreSQL 15 server (postgresql-15), etcd (etcd-server, etcd-client), haproxy,
#          pgbouncer (the router's PgBouncer tests run the real one),
#          chromium (the dashboard's browser test drives it headless)
#          clang, zlib1g-dev (the native AOT build: scripts/package.sh, bench/footprint),
#          systemd (systemd-analyze verifies the package's units in the tests), dpkg-deb, man-db (man page test)
#
# Packages are installed only when missing (installing needs root). Services
# that the packages start on install are stopped again (our demo and tests use
# their own ports), but only the ones this run created: a PostgreSQL cluster or
# an etcd that existed before is never touched.
#
# Usage: scripts/install-deps.sh [--dotnet-only]
set -uo pipefail

say()  { echo "install-deps: $*"; }
die()  { echo "install-deps: ERROR: $*" >&2; exit 1; }

PG_BIN=/usr/lib/postgresql/15/bin

# An executable on PATH (`command -v` alone also reports non-executable files).
have() { local p; p=$(command -v "$1" 2>/dev/null) && [[ -f $p && -x $p ]]; }

# --- .NET SDK --------------------------------------------------------------
check_dotnet() {
    if ! have dotnet; then
        cat >&2 <<'EOF'
install-deps: ERROR: `dotnet` was not found on PATH. Steward needs the .NET 10 SDK.
  Install it on Debian 12, for example:
    wget https://packages.microsoft.com/config/debian/12/packages-microsoft-prod.deb
    dpkg -i packages-microsoft-prod.deb && apt-get update && apt-get install -y dotnet-sdk-10.0
  or with the install script (no root needed):
    curl -sSL https://dot.net/v1/dotnet-install.sh | bash -s -- --channel 10.0
    export PATH="$HOME/.dotnet:$PATH"
EOF
        exit 1
    fi
    if ! dotnet --list-sdks 2>/dev/null | grep -q '^10\.'; then
        echo "install-deps: ERROR: dotnet found ($(command -v dotnet)) but no .NET 10 SDK:" >&2
        dotnet --list-sdks >&2 || true
        die "install the .NET 10 SDK (see https://dot.net/v1/dotnet-install.sh --channel 10.0)"
    fi
    say "dotnet SDK $(dotnet --version) ok"
}

check_dotnet
[[ "${1:-}" == "--dotnet-only" ]] && exit 0

# --- what is missing --------------------------------------------------------
missing=()
have etcd    || missing+=(etcd-server)
have etcdctl || missing+=(etcd-client)
have haproxy || missing+=(haproxy)
[[ -x /usr/sbin/pgbouncer ]] || missing+=(pgbouncer)
have chromium || missing+=(chromium)
have clang || missing+=(clang)
[[ -e /usr/include/zlib.h ]] || missing+=(zlib1g-dev)
have systemd-analyze || missing+=(systemd)
have dpkg-deb || missing+=(dpkg)
have man || missing+=(man-db)
if ! [[ -x $PG_BIN/postgres && -x $PG_BIN/initdb && -x $PG_BIN/pg_ctl ]]; then
    missing+=(postgresql-15)
fi

if ((${#missing[@]} == 0)); then
    say "etcd, etcdctl, haproxy, pgbouncer, chromium, PostgreSQL 15, clang, zlib1g-dev and systemd-analyze already installed; nothing to do"
else
    say "missing packages: ${missing[*]}"
    ((EUID == 0)) || die "installing packages needs root; run as root: apt-get install -y ${missing[*]}"
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; this script supports Debian 12 only"

    # State before the install, so we only undo what the install itself did.
    had_pg_main=0; [[ -e /etc/postgresql/15/main ]] && had_pg_main=1
    systemd=0; [[ -d /run/systemd/system ]] && systemd=1
    etcd_pidfile=/run/etcd.pid
    etcd_pid_before=""
    if ((systemd)); then
        etcd_pid_before=$(systemctl show -p MainPID --value etcd.service 2>/dev/null || true)
        [[ $etcd_pid_before == 0 ]] && etcd_pid_before=""
    elif [[ -r $etcd_pidfile ]]; then
        etcd_pid_before=$(cat "$etcd_pidfile" 2>/dev/null || true)
    fi

    export DEBIAN_FRONTEND=noninteractive
    say "apt-get update"
    apt-get update -q || die "apt-get update failed"
    say "apt-get install -y ${missing[*]}"
    apt-get install -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${missing[@]}" || die "apt-get install ${missing[*]} failed"

    # PostgreSQL: the Debian package creates and starts cluster "15 main" on 5432.
    if ((!had_pg_main)) && [[ -e /etc/postgresql/15/main ]]; then
        say "the install created PostgreSQL cluster 15/main; stopping it and disabling autostart"
        if pg_lsclusters 15 main 2>/dev/null | awk 'NR > 1 && $4 == "online" { found = 1 } END { exit !found }'; then
            pg_ctlcluster 15 main stop || die "could not stop the PostgreSQL cluster 15/main that the install started"
        fi
        start_conf=/etc/postgresql/15/main/start.conf
        if [[ -f $start_conf ]] && grep -q '^auto' "$start_conf"; then
            sed -i 's/^auto\b.*/manual/' "$start_conf"
        fi
        ((systemd)) && systemctl daemon-reload 2>/dev/null || true
        say "cluster 15/main: $(pg_lsclusters 15 main 2>/dev/null | awk 'NR > 1 { print $4 }'), start.conf: $(grep -v '^#' "$start_conf" | grep . | head -1)"
    fi

    # pgbouncer: the package's service starts one on 6432 (the demo's PgBouncer port); tests and the demo run their own.
    if [[ " ${missing[*]} " == *" pgbouncer "* ]]; then
        if ((systemd)); then
            if systemctl is-active --quiet pgbouncer.service 2>/dev/null; then
                say "the install started pgbouncer.service; stopping and disabling it"
                systemctl stop pgbouncer.service || true
            fi
            systemctl disable pgbouncer.service 2>/dev/null || true
        elif [[ -x /etc/init.d/pgbouncer ]]; then
            /etc/init.d/pgbouncer stop >/dev/null 2>&1 || true
        fi
    fi

    # etcd: the package's service may have started an etcd on 2379.
    if [[ " ${missing[*]} " == *" etcd-server "* && -z $etcd_pid_before ]]; then
        etcd_pid=""
        if ((systemd)); then
            etcd_pid=$(systemctl show -p MainPID --value etcd.service 2>/dev/null || true)
            [[ $etcd_pid == 0 ]] && etcd_pid=""
        elif [[ -r $etcd_pidfile ]]; then
            etcd_pid=$(cat "$etcd_pidfile" 2>/dev/null || true)
        fi
        # Only a live etcd process counts (a stale pidfile does not).
        if [[ $etcd_pid =~ ^[0-9]+$ ]] && [[ $(readlink "/proc/$etcd_pid/exe" 2>/dev/null) == */etcd ]]; then
            say "the install started etcd (pid $etcd_pid); stopping it"
            if ((systemd)); then
                systemctl stop etcd.service || true
                systemctl disable etcd.service 2>/dev/null || true
            else
                service etcd stop || true
            fi
            for _ in $(seq 50); do [[ -e /proc/$etcd_pid ]] || break; sleep 0.1; done
            if [[ -e /proc/$etcd_pid ]]; then
                say "etcd (pid $etcd_pid) still running; sending SIGTERM to that pid"
                kill -TERM "$etcd_pid" 2>/dev/null || true
                for _ in $(seq 50); do [[ -e /proc/$etcd_pid ]] || break; sleep 0.1; done
            fi
            [[ -e /proc/$etcd_pid ]] && die "could not stop etcd pid $etcd_pid that the install started"
            say "etcd stopped"
        fi
    fi
fi

# --- verify ------------------------------------------------------------------
fail=0
for t in etcd etcdctl haproxy chromium clang systemd-analyze dpkg-deb man; do
    have "$t" || { echo "install-deps: ERROR: $t not found after install" >&2; fail=1; }
done
[[ -x /usr/sbin/pgbouncer ]] || { echo "install-deps: ERROR: /usr/sbin/pgbouncer not found after install (package pgbouncer)" >&2; fail=1; }
for t in postgres initdb pg_ctl pg_basebackup pg_rewind; do
    [[ -x $PG_BIN/$t ]] || { echo "install-deps: ERROR: $PG_BIN/$t not found after install (package postgresql-15)" >&2; fail=1; }
done
id postgres >/dev/null 2>&1 || { echo "install-deps: ERROR: OS user 'postgres' does not exist (PostgreSQL runs as it)" >&2; fail=1; }
((fail)) && die "required tools are missing; tests cannot run"

say "etcd $(etcd --version 2>/dev/null | awk '/etcd Version/ { print $3 }'), PostgreSQL $("$PG_BIN/postgres" --version | awk '{ print $3 }'), $(haproxy -v 2>/dev/null | head -1 | awk '{ print $1, $3 }')"
