#!/usr/bin/env bash
# System packages the tests need, from Debian 12's archive: the PostgreSQL 15 server (the
# tests start their own throwaway cluster), Java 17 for Spark, a Japanese font for the
# charts' fallback test, Chromium for the web app's browser tests and LibreOffice Calc to open
# the workbooks. Idempotent: installs only what is
# missing, and runs apt-get only then.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
missing=()

# Debian keeps initdb off the PATH, in /usr/lib/postgresql/VERSION/bin.
if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && ! command -v initdb >/dev/null; then
    missing+=(postgresql-15)
fi
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
# A Japanese system font: the charts ship their own (Noto Sans CJK JP, a Python dependency); this
# one is what tests/test_chart_font.py falls back to. IPAex Gothic is one 6 MB package.
compgen -G '/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf' >/dev/null || missing+=(fonts-ipaexfont-gothic)
# The web app's end-to-end tests drive Debian's Chromium (headless) with Playwright.
[ -x /usr/bin/chromium ] || missing+=(chromium)
# The workbooks kizuna writes are opened by LibreOffice (headless, converted) in tests/test_workbooks.py.
command -v soffice >/dev/null || missing+=(libreoffice-calc-nogui)

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-system.sh: missing ${missing[*]}; run as root (e.g. sudo bash .ci/install-system.sh)" >&2
    exit 1
fi

# The tests make their own clusters: no need for the package's default one (or its server).
if [[ " ${missing[*]} " == *" postgresql-15 "* ]]; then
    mkdir -p /etc/postgresql-common
    conf=/etc/postgresql-common/createcluster.conf
    if ! grep -qs '^create_main_cluster' "$conf"; then
        echo 'create_main_cluster = false' >>"$conf"
    fi
fi

echo "install-system.sh: installing ${missing[*]}"
apt-get update -qq
# Keep a createcluster.conf written above (dpkg conffile or ucf-managed alike).
UCF_FORCE_CONFFOLD=1 apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" >/dev/null
