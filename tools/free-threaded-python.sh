#!/usr/bin/env bash
# Builds a free-threaded CPython 3.13 (no GIL) from Debian's python3.13 source package into a
# private prefix, and prints the interpreter's path as its last line. Nothing is installed
# system-wide; apt runs with private state folders. A finished build is reused.
#
#   PY=$(tools/free-threaded-python.sh | tail -n 1)
#
# Environment: FT_PREFIX (default ~/.cache/fearless/py313t), FT_SUITES (Debian suites tried in
# order, default "forky trixie sid"). About 25 MB of downloads and 3 minutes on 2 cores.
#
# `python3 tools/dev.py test-ft` runs it and makes .venv-ft with the interpreter it prints. A plain
# `"$PY" -m venv .venv-ft && .venv-ft/bin/pip install -e '.[test]'` does not work on 3.13t:
# hypothesis >= 6.156 has a Rust extension without a free-threaded wheel, and its source build
# needs Rust crates that CI cannot fetch; tools/dev.py passes --prefer-binary, which takes the
# newest pure-Python hypothesis instead.
set -euo pipefail
PREFIX=${FT_PREFIX:-$HOME/.cache/fearless/py313t}
PY="$PREFIX/bin/python3.13t"
if [[ -x $PY ]] && "$PY" -c 'import sys; sys.exit(sys._is_gil_enabled())' 2>/dev/null; then
    echo "$PY"; exit 0
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
MIRROR=$(apt-get indextargets --format '$(REPO_URI)' 2>/dev/null | grep -v -- -security | head -n1)
[[ -n $MIRROR ]] || MIRROR=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null)
[[ -n $MIRROR ]] || MIRROR=$(awk '/^deb / && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
[[ -n $MIRROR ]] || { echo "no Debian mirror is configured in apt's sources" >&2; exit 1; }
mkdir -p "$WORK/apt/lists/partial" "$WORK/apt/cache/archives/partial" "$WORK/apt/sources.list.d" "$WORK/src"
APT=(-o "Dir::Etc::SourceList=$WORK/apt/sources.list" -o "Dir::Etc::SourceParts=$WORK/apt/sources.list.d"
     -o "Dir::State::Lists=$WORK/apt/lists" -o "Dir::Cache=$WORK/apt/cache" -o Acquire::Check-Valid-Until=false)
cd "$WORK/src"
got=
for suite in ${FT_SUITES:-forky trixie sid}; do
    echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR $suite main" >"$WORK/apt/sources.list"
    apt-get "${APT[@]}" -qq update >&2 || continue
    if apt-get "${APT[@]}" -qq source --download-only python3.13 >&2; then got=$suite; break; fi
done
[[ -n $got ]] || { echo "no python3.13 source package could be downloaded" >&2; exit 1; }
tar xf python3.13_*.orig.tar.xz
cd Python-3.13.*/
./configure --disable-gil --disable-test-modules --with-ensurepip=install --prefix="$PREFIX" >"$WORK/configure.log" 2>&1 \
    || { tail -n 30 "$WORK/configure.log" >&2; exit 1; }
make -j"$(nproc)" >"$WORK/make.log" 2>&1 || { tail -n 30 "$WORK/make.log" >&2; exit 1; }
make install >"$WORK/install.log" 2>&1 || { tail -n 30 "$WORK/install.log" >&2; exit 1; }
"$PY" -c 'import sys; assert not sys._is_gil_enabled(), "GIL is enabled"' >&2
echo "$PY"
