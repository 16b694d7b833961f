#!/usr/bin/env bash
# Installs what is missing, checks the generated code is fresh, builds and runs every test:
# the Swift test suites (unit + integration over skiffd's socket) and the Python grpcio client tests.
# Tests run inside their own network namespace, so their traffic stays off the host's interfaces.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/opt/swift/usr/bin"

scripts/install-deps --test
scripts/gen-proto --check
swift build --build-tests
bin="$(swift build --show-bin-path)"

status=0
swift_log="$(mktemp /tmp/skiff-swift-test.XXXXXX)"
trap 'rm -f "$swift_log"' EXIT
# lo must be up inside the fresh network namespace for loopback tests (registries, in-pod networking).
unshare --net --fork -- sh -c 'ip link set lo up && exec swift test --skip-build' 2>&1 | tee "$swift_log" || status=$?
SKIFF_BIN="$bin" unshare --net --fork -- sh -c 'ip link set lo up && exec python3 -m pytest -q Tests/python' || status=$?

# CI logs are often read from the tail only: repeat each failing test's issues there, shortened.
if grep -q '✘' "$swift_log"; then
    echo "=== Swift test failures (repeated from above) ==="
    sed 's/\x1b\[[0-9;]*m//g' "$swift_log" | grep -A4 '✘' | grep -v -e '^--$' -e '^✔' -e '^◇' | cut -c1-300 | head -n 120
fi
exit $status
