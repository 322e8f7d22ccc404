#!/usr/bin/env bash
# Build Steward's Debian package with dpkg-deb (no network once the NuGet packages are restored).
#
#   scripts/package.sh                 native AOT: one executable, /usr/bin/steward (publish takes minutes)
#   scripts/package.sh --jit           framework-dependent: /usr/lib/steward/*.dll + a /usr/bin/steward wrapper that
#                                      runs `dotnet` (needs the .NET 10 ASP.NET Core runtime; quick, used by the tests)
#   scripts/package.sh --binary FILE [--router-binary FILE2]
#                                      package AOT executables published before (bench/footprint reuses them);
#                                      FILE2 is the router-only one (-p:StewardRouterOnly=true), left out when not given
#   scripts/package.sh --jit --from DIR  package a framework-dependent build that exists already (the tests use
#                                      src/Steward/bin/Release/net10.0 from `dotnet build -c Release`)
#   options: --out DIR (default dist/), --version V (default: what the built steward prints)
#
# Prints the .deb's path as the last line of stdout. The AOT toolchain needs clang and zlib1g-dev
# (scripts/install-deps.sh installs them); dpkg-deb comes with dpkg.
#
# Contents: /usr/bin/steward; /usr/lib/steward/steward-router (native only: the router alone, which `steward router`
# hands over to); /etc/steward/node.yml and router.yml (commented examples, conffiles);
# /lib/systemd/system/steward@.service (agent, User=postgres, /etc/steward/%i.yml) and steward-router.service;
# /usr/share/man/man1/steward.1.gz; /usr/share/doc/steward/. postinst only creates /var/lib/steward when missing and
# runs `systemctl daemon-reload`; nothing is enabled or started.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
mode=aot
from=""
out=$ROOT/dist
version=""
binary=""
router_binary=""
while (($#)); do
    case $1 in
        --jit) mode=jit ;;
        --binary) mode=binary; binary=$(readlink -f "$2"); shift ;;
        --router-binary) router_binary=$(readlink -f "$2"); shift ;;
        --from) from=$(readlink -f "$2"); shift ;;
        --out) out=$2; shift ;;
        --version) version=$2; shift ;;
        -h|--help) sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "package.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

say() { echo "package.sh: $*" >&2; }
die() { echo "package.sh: ERROR: $*" >&2; exit 1; }
command -v dpkg-deb >/dev/null || die "dpkg-deb not found (package dpkg)"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

work=$(mktemp -d "${TMPDIR:-/tmp}/steward-package.XXXXXX")
trap 'rm -rf "$work"' EXIT
publish=$work/publish
artifacts=${STEWARD_PACKAGE_ARTIFACTS:-$ROOT/artifacts/package-$mode}

t0=$SECONDS
case $mode in
    aot)
        command -v clang >/dev/null || die "clang not found: the native AOT linker needs it (apt-get install clang zlib1g-dev, or scripts/install-deps.sh)"
        say "native AOT publish (linux-x64)…"
        dotnet publish "$ROOT/src/Steward/Steward.csproj" -c Release -r linux-x64 -nologo \
            -p:PublishAot=true --artifacts-path "$artifacts" -o "$publish" >"$work/publish.log" 2>&1 \
            || { grep -E 'error|warning' "$work/publish.log" | sort -u | tail -n 40 >&2; die "publish failed"; }
        # Any trim/AOT warning fails the build (TreatWarningsAsErrors), so none can slip into the package.
        binary=$publish/steward
        # The router-only executable: the same project with an entry point that reaches only the router, so the native
        # compiler leaves the agent, the CLI and Npgsql out; `steward router` hands over to it (src/Steward/RouterExec.cs).
        # Same artifacts path: the libraries are compiled once, only steward.dll again (another entry point).
        say "native AOT publish of the router-only executable…"
        dotnet publish "$ROOT/src/Steward/Steward.csproj" -c Release -r linux-x64 -nologo \
            -p:PublishAot=true -p:StewardRouterOnly=true --artifacts-path "$artifacts" -o "$work/publish-router" \
            >"$work/publish-router.log" 2>&1 \
            || { grep -E 'error|warning' "$work/publish-router.log" | sort -u | tail -n 40 >&2; die "publish of the router failed"; }
        router_binary=$work/publish-router/steward
        ;;
    jit)
        if [[ -n $from ]]; then
            [[ -f $from/steward.dll && -f $from/steward.runtimeconfig.json ]] || die "--from $from: no steward.dll and steward.runtimeconfig.json there"
            cp -r "$from"/. "$publish/"
            rm -rf "$publish/runtimes/win"* "$publish/runtimes/osx"* 2>/dev/null || true
        else
        say "framework-dependent publish…"
        dotnet publish "$ROOT/src/Steward/Steward.csproj" -c Release --no-self-contained -nologo \
            --artifacts-path "$artifacts" -o "$publish" >"$work/publish.log" 2>&1 \
            || { grep -E 'error' "$work/publish.log" | sort -u | tail -n 40 >&2; die "publish failed"; }
        fi
        ;;
    binary)
        [[ -x $binary ]] || die "--binary $binary is not an executable"
        [[ -z $router_binary || -x $router_binary ]] || die "--router-binary $router_binary is not an executable"
        [[ -n $router_binary ]] || say "no --router-binary: \`steward router\` will run the router in the steward process"
        ;;
esac
say "published in $((SECONDS - t0)) s"

# --- the tree -----------------------------------------------------------------
pkg=$work/root
install -d -m 0755 "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/etc/steward" "$pkg/lib/systemd/system" \
    "$pkg/usr/share/man/man1" "$pkg/usr/share/doc/steward"
if [[ $mode == jit ]]; then
    install -d -m 0755 "$pkg/usr/lib/steward"
    cp -r "$publish"/. "$pkg/usr/lib/steward/"
    rm -f "$pkg"/usr/lib/steward/*.pdb
    chmod -R u=rwX,go=rX "$pkg/usr/lib/steward"
    cat >"$pkg/usr/bin/steward" <<'WRAPPER'
#!/bin/sh
# Framework-dependent Steward (scripts/package.sh --jit): runs the program next to this package's files.
here=$(dirname "$(readlink -f "$0")")
exec dotnet "$here/../lib/steward/steward.dll" "$@"
WRAPPER
    chmod 0755 "$pkg/usr/bin/steward"
    run=(dotnet "$publish/steward.dll")
    depends="libc6 (>= 2.34), aspnetcore-runtime-10.0 | dotnet-runtime-10.0"
else
    install -m 0755 "$binary" "$pkg/usr/bin/steward"
    strip --strip-unneeded "$pkg/usr/bin/steward" 2>/dev/null || true
    if [[ -n $router_binary ]]; then
        install -d -m 0755 "$pkg/usr/lib/steward"
        install -m 0755 "$router_binary" "$pkg/usr/lib/steward/steward-router"
        strip --strip-unneeded "$pkg/usr/lib/steward/steward-router" 2>/dev/null || true
    fi
    run=("$pkg/usr/bin/steward")
    glibc=$(objdump -T "$pkg/usr/bin/steward" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)
    # Packed relative relocations (Steward.csproj: -z pack-relative-relocs) need glibc 2.36; objdump -T does not show it.
    if readelf -V "$pkg/usr/bin/steward" 2>/dev/null | grep -q GLIBC_ABI_DT_RELR; then
        glibc=$(printf '%s\n' "${glibc:-2.34}" 2.36 | sort -V | tail -n 1)
    fi
    depends="libc6 (>= ${glibc:-2.34})"
fi

[[ -n $version ]] || version=$("${run[@]}" version | awk '{ print $2 }')
[[ $version =~ ^[0-9][0-9A-Za-z.+~-]*$ ]] || die "cannot tell the version (got '$version')"
helptext=$("${run[@]}" --help)

install -m 0644 "$ROOT/packaging/etc/node.yml" "$ROOT/packaging/etc/router.yml" "$pkg/etc/steward/"
install -m 0644 "$ROOT/packaging/systemd/steward@.service" "$ROOT/packaging/systemd/steward-router.service" "$pkg/lib/systemd/system/"
install -m 0755 "$ROOT/packaging/debian/postinst" "$ROOT/packaging/debian/postrm" "$pkg/DEBIAN/"
printf '/etc/steward/node.yml\n/etc/steward/router.yml\n' >"$pkg/DEBIAN/conffiles"

# Man page: the hand-written sections plus `steward --help` of this very build.
escaped=$(printf '%s\n' "$helptext" | sed -e 's/\\/\\e/g' -e 's/^\./\\\&./' -e "s/^'/\\\\\&'/" -e 's/-/\\-/g')
awk -v help="$escaped" -v version="$version" -v date="$(date -u +%Y-%m-%d)" '
    { gsub(/@VERSION@/, version); gsub(/@DATE@/, date) }
    /^@HELP@$/ { print help; next }
    { print }' "$ROOT/packaging/steward.1.in" | gzip -9n >"$pkg/usr/share/man/man1/steward.1.gz"
chmod 0644 "$pkg/usr/share/man/man1/steward.1.gz"

install -m 0644 "$ROOT/README.md" "$pkg/usr/share/doc/steward/README.md"
for d in agent cli router packaging; do
    [[ -f $ROOT/docs/$d.md ]] && install -m 0644 "$ROOT/docs/$d.md" "$pkg/usr/share/doc/steward/$d.md"
done

size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@SIZE@/$size/" -e "s/@DEPENDS@/$depends/" \
    "$ROOT/packaging/debian/control.in" >"$pkg/DEBIAN/control"
if [[ $mode == jit ]]; then
    sed -i 's/^Description: .*/& (framework-dependent build)/' "$pkg/DEBIAN/control"
fi
(cd "$pkg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$pkg/DEBIAN/md5sums"

mkdir -p "$out"
suffix=""; [[ $mode == jit ]] && suffix="-jit"
deb=$(readlink -f "$out")/steward_${version}${suffix}_amd64.deb
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >&2
say "built $deb ($(du -h "$deb" | cut -f1), $((SECONDS - t0)) s in all)"
echo "$deb"
