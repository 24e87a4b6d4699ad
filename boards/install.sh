#!/bin/sh
# Installs fieldtune as a systemd service on a Raspberry Pi, Jetson or any Debian-like board, by hand
# (the .deb from `cargo deb` is the packaged way; it uses /usr and /lib instead).
#
#   cargo build --release --features pi        # on the board, or cross-compile (see README)
#   sudo boards/install.sh rpi4                 # the board file's name, from boards/
#
# What it does (each step idempotent), in the paths that belong to the administrator and not to the
# package manager: the binary to /usr/local/bin, the model to /usr/local/share/fieldtune/models, the
# board file to /etc/fieldtune/board.toml (kept if it exists), the service user and groups
# (/etc/sysusers.d, /etc/tmpfiles.d), the unit to /etc/systemd/system with ExecStart= pointing at
# /usr/local/bin; then enables and starts the service.
#
# PREFIX=/usr/local and SYSCONFDIR=/etc can be changed for a staged install (then nothing is started
# when ROOT is set: ROOT=/tmp/stage boards/install.sh rpi4 only writes the files under /tmp/stage).
set -eu

board=${1:-}
if [ -z "$board" ] || [ ! -f "boards/$board.toml" ]; then
    echo "usage: sudo boards/install.sh BOARD   (one of: $(cd boards && ls *.toml | sed 's/\.toml$//' | tr '\n' ' '))" >&2
    exit 2
fi
ROOT=${ROOT:-}
PREFIX=${PREFIX:-/usr/local}
SYSCONFDIR=${SYSCONFDIR:-/etc}
if [ -z "$ROOT" ] && [ "$(id -u)" -ne 0 ]; then
    echo "run as root (sudo): it installs a system service" >&2
    exit 2
fi
binary=${FIELDTUNE_BINARY:-target/release/fieldtune}
if [ ! -x "$binary" ]; then
    echo "$binary not found: build it first (cargo build --release --features pi), or set FIELDTUNE_BINARY" >&2
    exit 2
fi

bindir=$PREFIX/bin
models=$PREFIX/share/fieldtune/models
install -D -m 0755 "$binary" "$ROOT$bindir/fieldtune"
install -d -m 0755 "$ROOT$models"
install -m 0644 models/efficientnet_lite0_features.onnx models/efficientnet_lite0.toml \
    models/PROVENANCE.md models/NOTICE models/LICENSE-Apache-2.0 "$ROOT$models/"
install -d -m 0755 "$ROOT$SYSCONFDIR/fieldtune"
# The board files name the packaged model path; point them at this install's.
board_text=$(sed "s|/usr/share/fieldtune/models/|$models/|g" "boards/$board.toml")
if [ -e "$ROOT$SYSCONFDIR/fieldtune/board.toml" ]; then
    echo "keeping the existing $SYSCONFDIR/fieldtune/board.toml (new one: $SYSCONFDIR/fieldtune/board.toml.new)"
    printf '%s\n' "$board_text" > "$ROOT$SYSCONFDIR/fieldtune/board.toml.new"
    chmod 0644 "$ROOT$SYSCONFDIR/fieldtune/board.toml.new"
else
    printf '%s\n' "$board_text" > "$ROOT$SYSCONFDIR/fieldtune/board.toml"
    chmod 0644 "$ROOT$SYSCONFDIR/fieldtune/board.toml"
fi
install -D -m 0644 boards/fieldtune.sysusers "$ROOT$SYSCONFDIR/sysusers.d/fieldtune.conf"
install -D -m 0644 boards/fieldtune.tmpfiles "$ROOT$SYSCONFDIR/tmpfiles.d/fieldtune.conf"
install -d -m 0755 "$ROOT$SYSCONFDIR/systemd/system"
sed -e "s|/usr/bin/fieldtune|$bindir/fieldtune|g" \
    -e "s|/etc/fieldtune/|$SYSCONFDIR/fieldtune/|g" \
    boards/fieldtune.service > "$ROOT$SYSCONFDIR/systemd/system/fieldtune.service"
chmod 0644 "$ROOT$SYSCONFDIR/systemd/system/fieldtune.service"
fieldtune_check=$("$ROOT$bindir/fieldtune" --version)
echo "installed $fieldtune_check into $ROOT$bindir and $ROOT$SYSCONFDIR/systemd/system"
if [ -n "$ROOT" ]; then
    exit 0
fi
systemd-sysusers "$SYSCONFDIR/sysusers.d/fieldtune.conf"
systemd-tmpfiles --create "$SYSCONFDIR/tmpfiles.d/fieldtune.conf"
systemctl daemon-reload
systemctl enable --now fieldtune.service
echo "running: journalctl -u fieldtune -f   |   fieldtune status"
