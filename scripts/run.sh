#!/usr/bin/env bash
# Installs what is missing, builds Skiff (release) and starts skiffd on its embedded defaults:
# socket /run/skiff/skiff.sock, state /var/lib/skiff and /run/skiff, no config file needed.
# Extra arguments go to skiffd (e.g. --log-level debug, --config /etc/skiff/skiff.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/opt/swift/usr/bin"
scripts/install-deps
swift build -c release --product skiffd
for p in skiff-runc skiff-pause skiff-monitor skiffctl; do swift build -c release --product "$p"; done
bin="$(swift build -c release --show-bin-path)"
exec "$bin/skiffd" "$@"
