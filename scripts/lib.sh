# Shared helpers for scripts/*; source it, don't run it.
# shellcheck disable=SC2034  # SHOAL_ROOT is used by the scripts that source this
# shellcheck shell=bash

SHOAL_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

log() { printf '%s: %s\n' "${SHOAL_SCRIPT:-shoal}" "$*" >&2; }
die() { printf '%s: error: %s\n' "${SHOAL_SCRIPT:-shoal}" "$*" >&2; exit 1; }
is_root() { [ "$(id -u)" -eq 0 ]; }

# apt_install PKG... — install Debian packages non-interactively (root only).
# `apt-get update` runs at most once every few hours across all our scripts.
apt_install() {
    is_root || die "need Debian packages ($*) but not running as root; install them and re-run"
    command -v apt-get >/dev/null || die "need packages ($*) but apt-get is not available"
    export DEBIAN_FRONTEND=noninteractive
    local stamp=/tmp/.shoal-apt-updated
    if [ -z "$(find "$stamp" -mmin -360 2>/dev/null)" ]; then
        log "apt-get update"
        apt-get update -qq || die "apt-get update failed"
        touch "$stamp"
    fi
    log "apt-get install $*"
    apt-get install -y -qq --no-install-recommends "$@" </dev/null >/dev/null \
        || die "apt-get install $* failed"
}

# ensure_commands PKG:COMMAND... — install PKG when COMMAND is not on PATH.
ensure_commands() {
    local missing=() pair pkg cmd
    for pair in "$@"; do
        pkg="${pair%%:*}"
        cmd="${pair#*:}"
        command -v "$cmd" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null 2>&1 \
            || missing+=("$pkg")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    if is_root; then
        apt_install "${missing[@]}"
    else
        log "warning: missing ${missing[*]} (not root, not installing); tests that need them will skip"
    fi
}
