#!/usr/bin/env bash
# Prepare this checkout for `make run` / `make test` on Debian or Ubuntu:
#   1. a virtualenv in .venv with the project and its dev extras installed (editable),
#   2. the generated protobuf code (scripts/genprotos.py),
#   3. Mosquitto from the OS packages, with the package's own service kept off port 1883.
# Every step checks first and does nothing when already done, so a second run takes a second.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3.11}
VENV=.venv

say() { printf 'setup: %s\n' "$*"; }
die() {
    printf 'setup: error: %s\n' "$1" >&2
    shift
    for line in "$@"; do printf '    %s\n' "$line" >&2; done
    exit 1
}

# --- Python virtualenv --------------------------------------------------------------------

venv_works() {
    [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null
}

make_venv() {
    command -v "$PYTHON" >/dev/null 2>&1 ||
        die "$PYTHON was not found; this project needs Python 3.11." \
            "On Debian/Ubuntu: sudo apt-get install -y python3.11 python3.11-venv" \
            "(or set PYTHON=/path/to/python3.11 and run again)"
    # Debian splits venv/ensurepip into its own package; without it `-m venv` half-works.
    "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null ||
        die "$PYTHON cannot create virtualenvs: the apt package python3.11-venv is missing." \
            "Install it with: sudo apt-get install -y python3.11-venv" \
            "then run 'make setup' again."
    rm -rf "$VENV"
    say "creating virtualenv in $VENV"
    if ! "$PYTHON" -m venv "$VENV"; then
        rm -rf "$VENV"
        die "'$PYTHON -m venv $VENV' failed." \
            "On Debian/Ubuntu install the apt package python3.11-venv:" \
            "sudo apt-get install -y python3.11-venv"
    fi
}

install_python_deps() {
    local digest stamp
    digest=$(sha256sum pyproject.toml | cut -d' ' -f1)
    stamp="$VENV/.installed-$digest"
    [ -e "$stamp" ] && return 0
    say "installing the project and its dependencies into $VENV (first run takes a few minutes)"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[dev]'
    rm -f "$VENV"/.installed-*
    touch "$stamp"
}

# --- Mosquitto ------------------------------------------------------------------------------

SUDO=()

can_be_root() {
    if [ "$(id -u)" -eq 0 ]; then
        SUDO=()
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=(sudo -n)
    else
        return 1
    fi
}

have_mosquitto() {
    command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]
}

install_mosquitto() {
    have_mosquitto && return 0
    command -v apt-get >/dev/null 2>&1 ||
        die "Mosquitto (the MQTT broker) is not installed and this is not a Debian/Ubuntu system." \
            "Install the mosquitto package with your OS package manager, then run 'make setup' again."
    can_be_root ||
        die "Mosquitto (the MQTT broker) is not installed and installing it needs root." \
            "Run: sudo apt-get update && sudo apt-get install -y mosquitto" \
            "then run 'make setup' again."
    say "installing mosquitto from the OS packages"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q mosquitto
    have_mosquitto || die "apt-get installed mosquitto but no mosquitto binary was found."
}

# The Debian package runs its own broker as a system service on port 1883. `m2x up` starts
# a broker with the project's configuration instead, so the packaged service must stay off.
systemd_runs_mosquitto() {
    # `is-enabled` also answers without a running systemd (containers), so a machine image
    # that boots systemd later does not start the packaged broker either.
    command -v systemctl >/dev/null 2>&1 &&
        { systemctl is-enabled --quiet mosquitto 2>/dev/null ||
            { [ -d /run/systemd/system ] && systemctl is-active --quiet mosquitto 2>/dev/null; }; }
}

initd_runs_mosquitto() {
    # The package's init script keeps this pid file; brokers started by `m2x up` do not.
    [ ! -d /run/systemd/system ] && [ -x /etc/init.d/mosquitto ] &&
        [ -s /run/mosquitto/mosquitto.pid ] &&
        kill -0 "$(cat /run/mosquitto/mosquitto.pid)" 2>/dev/null
}

quiet_packaged_broker() {
    if systemd_runs_mosquitto; then
        can_be_root ||
            die "the system's mosquitto service would hold port 1883; stop and disable it:" \
                "sudo systemctl stop mosquitto && sudo systemctl disable mosquitto"
        say "stopping and disabling the system mosquitto service (it would hold port 1883)"
        if [ -d /run/systemd/system ]; then
            "${SUDO[@]}" systemctl stop mosquitto || true
        fi
        "${SUDO[@]}" systemctl disable --quiet mosquitto >/dev/null 2>&1 || true
    fi
    if initd_runs_mosquitto; then
        can_be_root ||
            die "the system's mosquitto service would hold port 1883; stop it:" \
                "sudo service mosquitto stop && sudo update-rc.d mosquitto disable"
        say "stopping the system mosquitto service (it would hold port 1883)"
        "${SUDO[@]}" service mosquitto stop >/dev/null 2>&1 || true
        if command -v update-rc.d >/dev/null 2>&1; then
            "${SUDO[@]}" update-rc.d mosquitto disable >/dev/null 2>&1 || true
        fi
    fi
}

# --- main -----------------------------------------------------------------------------------

venv_works || make_venv
install_python_deps
"$VENV/bin/python" scripts/genprotos.py
install_mosquitto
quiet_packaged_broker
say "ok"
