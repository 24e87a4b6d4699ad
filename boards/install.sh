#!/bin/sh
# Installs fieldtune as a systemd service on a Raspberry Pi, Jetson or any Debian-like board.
#
#   cargo build --release --features pi        # on the board, or cross-compile (see README)
#   sudo boards/install.sh rpi4                 # the board file's name, from boards/
#
# What it does (each step idempotent): binary to /usr/bin, the model to /usr/share/fieldtune/models,
# the board file to /etc/fieldtune/board.toml (kept if it exists), the service user and groups,
# the unit, then enables and starts the service.
set -eu

board=${1:-}
if [ -z "$board" ] || [ ! -f "boards/$board.toml" ]; then
    echo "usage: sudo boards/install.sh BOARD   (one of: $(cd boards && ls *.toml | sed 's/\.toml$//' | tr '\n' ' '))" >&2
    exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "run as root (sudo): it installs a system service" >&2
    exit 2
fi
binary=${FIELDTUNE_BINARY:-target/release/fieldtune}
if [ ! -x "$binary" ]; then
    echo "$binary not found: build it first (cargo build --release --features pi), or set FIELDTUNE_BINARY" >&2
    exit 2
fi

install -D -m 0755 "$binary" /usr/bin/fieldtune
install -d -m 0755 /usr/share/fieldtune/models
install -m 0644 models/efficientnet_lite0_features.onnx models/efficientnet_lite0.toml \
    models/PROVENANCE.md models/NOTICE models/LICENSE-Apache-2.0 /usr/share/fieldtune/models/
install -d -m 0755 /etc/fieldtune
if [ -e /etc/fieldtune/board.toml ]; then
    echo "keeping the existing /etc/fieldtune/board.toml (new one: /etc/fieldtune/board.toml.new)"
    install -m 0644 "boards/$board.toml" /etc/fieldtune/board.toml.new
else
    install -m 0644 "boards/$board.toml" /etc/fieldtune/board.toml
fi
install -D -m 0644 boards/fieldtune.sysusers /usr/lib/sysusers.d/fieldtune.conf
install -D -m 0644 boards/fieldtune.tmpfiles /usr/lib/tmpfiles.d/fieldtune.conf
install -D -m 0644 boards/fieldtune.service /lib/systemd/system/fieldtune.service
systemd-sysusers /usr/lib/sysusers.d/fieldtune.conf
systemd-tmpfiles --create /usr/lib/tmpfiles.d/fieldtune.conf
fieldtune_check=$(/usr/bin/fieldtune --version)
echo "installed $fieldtune_check"
systemctl daemon-reload
systemctl enable --now fieldtune.service
echo "running: journalctl -u fieldtune -f   |   fieldtune status --board /etc/fieldtune/board.toml"
