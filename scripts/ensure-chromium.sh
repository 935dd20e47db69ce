#!/bin/sh
# Make sure Debian's Chromium is installed for the console's browser tests.
# Idempotent: does nothing when /usr/bin/chromium exists. As root it installs the Debian
# packages with apt-get; otherwise it prints the command to run and exits non-zero.
# The tests never download a browser (no `playwright install`): they drive /usr/bin/chromium.
set -eu

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    echo "chromium: $("$CHROMIUM" --version 2>/dev/null || echo present) at $CHROMIUM"
    exit 0
fi

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "chromium: $CHROMIUM is missing; installing Debian's chromium with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends chromium chromium-driver
    if [ -x "$CHROMIUM" ]; then
        echo "chromium: installed $("$CHROMIUM" --version 2>/dev/null || echo) at $CHROMIUM"
        exit 0
    fi
    echo "chromium: apt-get finished but $CHROMIUM is still missing" >&2
    exit 1
fi

cat >&2 <<MSG
chromium: $CHROMIUM is missing and this script cannot install it (needs root and apt-get).
Install Debian's Chromium, then run the tests again:

    sudo apt-get update && sudo apt-get install -y chromium chromium-driver

(Do not run 'playwright install': the console tests use the Debian browser.)
MSG
exit 1
