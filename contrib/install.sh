#!/usr/bin/env bash
# Install everything ovsbpfd needs on Debian 12 (run as root), then optionally
# start the daemon:  bash contrib/install.sh [--start] [--test]
#   --start  start ovsbpfd (embedded OVSDB, bpf datapath) in the background
#   --test   also install what the test suite needs
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
start=no
test_deps=no
for arg in "$@"; do
    case "$arg" in
        --start) start=yes ;;
        --test) test_deps=yes ;;
        *) echo "usage: $0 [--start] [--test]" >&2; exit 2 ;;
    esac
done

log() { echo "install: $*"; }

apt_packages=(clang llvm libbpf-dev make iproute2 iputils-ping iperf3 ethtool tcpdump
              openvswitch-common openvswitch-switch python3-pip)

missing=()
for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    # openvswitch-switch brings Debian's ovs-vswitchd/ovsdb-server services:
    # ovsbpfd replaces them, so keep them from starting while installing.
    created_policy=no
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        created_policy=yes
    fi
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}"
    [ "$created_policy" = yes ] && rm -f /usr/sbin/policy-rc.d
fi
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now openvswitch-switch ovs-vswitchd ovsdb-server \
        >/dev/null 2>&1 || true
fi

# BPF maps are pinned here; some containers come without it mounted.
if ! mount | grep -q ' /sys/fs/bpf type bpf'; then
    log "mounting bpffs on /sys/fs/bpf"
    mkdir -p /sys/fs/bpf
    mount -t bpf bpf /sys/fs/bpf
fi

python=${PYTHON:-python3}
extras=""
[ "$test_deps" = yes ] && extras="[test]"
log "pip install -e $here$extras"
"$python" -m pip install -q --disable-pip-version-check -e "$here$extras"

if [ "$start" = yes ]; then
    log "starting ovsbpfd"
    ovsbpfd --detach
    log "ovsbpfd is running: try 'ovs-vsctl show'"
fi
