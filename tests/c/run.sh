#!/usr/bin/env bash
# Build tests/c/test_capi.c (the C API from plain C; no Python needed) in its
# own build directory and run it:
#   tests/c/run.sh [build dir] [extra cmake arguments, e.g. -DVAEFAST_SANITIZE=ON]
# Exit status: the test program's (0 when every check passed).
set -euo pipefail
cd "$(dirname "$0")/../.."
build="${1:-build-ctest}"
shift || true
if ! command -v cmake >/dev/null 2>&1; then
    python3 -m pip install -q cmake   # the build's own tool, as pyproject's backend fetches it
fi
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! { cmake -S . -B "$build" -DVAEFAST_BUILD_CTEST=ON -DCMAKE_BUILD_TYPE=Release "$@" &&
       cmake --build "$build" --target test_capi --parallel; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "tests/c/run.sh: the build failed" >&2
    exit 1
fi
"$build/test_capi"
