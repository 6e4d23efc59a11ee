#!/usr/bin/env bash
# Installs what the qemu driver and guest/build.sh need, when missing: qemu-system-x86 (without
# the ~180 recommended desktop packages), busybox-static, lz4 (unpacks the kernel), iproute2, and
# nftables (the guests' fence on the bridge, drivers/guest-fence.ts).
# Idempotent and quiet: prints nothing and does nothing when all is there. Needs root (or sudo).
set -euo pipefail

need=()
command -v qemu-system-x86_64 >/dev/null 2>&1 || need+=(qemu-system-x86)
dpkg-query -W -f '${Status}' busybox-static 2>/dev/null | grep -q "ok installed" || need+=(busybox-static)
command -v lz4 >/dev/null 2>&1 || need+=(lz4)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v nft >/dev/null 2>&1 || need+=(nftables)
[[ ${#need[@]} -eq 0 ]] && exit 0

as_root=()
if [[ "$(id -u)" -ne 0 ]]; then
  command -v sudo >/dev/null 2>&1 || { echo "install-deps.sh: need root to install ${need[*]}" >&2; exit 1; }
  as_root=(sudo -n)
fi
export DEBIAN_FRONTEND=noninteractive
install() { "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1; }
# Package lists may be missing or stale on a fresh machine: update once and retry.
if ! install; then
  "${as_root[@]}" apt-get update -qq >/dev/null 2>&1
  install || { echo "install-deps.sh: apt-get install ${need[*]} failed" >&2; exit 1; }
fi
