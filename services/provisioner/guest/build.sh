#!/usr/bin/env bash
# Builds the microVM guest for the qemu driver from Debian packages:
#   vmlinux            uncompressed ELF kernel (booted with option ROMs off: faster under TCG)
#   vmlinuz            the same kernel as Debian ships it (bzImage), kept as a fallback
#   initramfs.cpio     busybox-static as /init plus the virtio-mmio/net and ACPI button modules
#   manifest.json      what was built from what; the driver reads it
# into $MIKROM_GUEST_DIR (default $XDG_CACHE_HOME/mikrom/guest or ~/.cache/mikrom/guest).
# Idempotent: when the manifest names the same kernel package and init script, it does nothing.
# Needs: apt-get, apt-cache, dpkg; lz4 (to unpack the LZ4 bzImage into vmlinux); busybox-static
# (downloaded with apt-get download when the host lacks it). Prints the guest folder on success.
# No pipefail: several pipelines stop reading early on purpose (head, grep -m1, awk exit), which
# would fail them through SIGPIPE; their results are checked instead.
set -eu

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${MIKROM_GUEST_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mikrom/guest}"
meta_pkg="${MIKROM_GUEST_KERNEL_PACKAGE:-linux-image-cloud-amd64}"
init_src="$here/init.sh"

log() { [[ -n "${MIKROM_GUEST_QUIET:-}" ]] || echo "guest/build.sh: $*" >&2; }
die() { echo "guest/build.sh: $*" >&2; exit 1; }

for tool in apt-get apt-cache dpkg-deb sha256sum; do
  command -v "$tool" >/dev/null || die "missing $tool (this script needs a Debian-based host)"
done

# The metapackage depends on exactly one versioned image package: that is the one to download.
kernel_pkg="$meta_pkg"
if [[ "$meta_pkg" != linux-image-[0-9]* ]]; then
  kernel_pkg="$(apt-cache depends "$meta_pkg" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')"
  [[ -n "$kernel_pkg" ]] || die "cannot resolve $meta_pkg to a versioned kernel package (apt-get update?)"
fi
kernel_ver="$(apt-cache show "$kernel_pkg" 2>/dev/null | awk '/^Version:/ { print $2; exit }')"
# Contents only: the same script reached by another path must not look like a change.
init_sum="$(cat "$init_src" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)"
stamp="$kernel_pkg=$kernel_ver init=$init_sum"

if [[ -f "$out/manifest.json" ]] && grep -qF "\"stamp\": \"$stamp\"" "$out/manifest.json" \
  && [[ -f "$out/vmlinux" && -f "$out/initramfs.cpio" ]]; then
  log "up to date ($stamp) in $out"
  echo "$out"
  exit 0
fi

mkdir -p "$out"
work="$(mktemp -d "$out/.build.XXXXXX")"
trap 'rm -rf "$work"' EXIT

log "downloading $kernel_pkg ($kernel_ver)"
# apt-get download writes to the current folder; run it where the _apt user may write, or it warns.
(cd "$work" && chmod 0777 . && apt-get download -q "$kernel_pkg" >/dev/null 2>&1) \
  || die "apt-get download $kernel_pkg failed"
dpkg-deb -x "$work"/"$kernel_pkg"_*.deb "$work/kernel"
kver="${kernel_pkg#linux-image-}"
vmlinuz="$work/kernel/boot/vmlinuz-$kver"
[[ -f "$vmlinuz" ]] || die "no /boot/vmlinuz-$kver in $kernel_pkg"
moddir="$(echo "$work"/kernel/lib/modules/*)"

# vmlinux: the bzImage's payload is one LZ4 (legacy frame) stream; find its magic and unpack it.
# lz4 stops at the end of the stream and complains about the trailer that follows: that is expected.
command -v lz4 >/dev/null || die "missing lz4 (apt-get install lz4), needed to unpack the kernel"
offset="$(grep -obUaP '\x02\x21\x4c\x18' "$vmlinuz" | head -1 | cut -d: -f1)"
[[ -n "$offset" ]] || die "no LZ4 stream in $vmlinuz (kernel not LZ4-compressed?)"
tail -c +"$((offset + 1))" "$vmlinuz" | lz4 -dc >"$work/vmlinux" 2>/dev/null || true
[[ "$(head -c 4 "$work/vmlinux" | od -An -c | tr -d ' ')" == '177ELF' ]] || die "unpacked kernel is not an ELF"

# busybox: the host's busybox-static when installed, else the package itself.
bb=""
if dpkg-query -W -f '${Status}' busybox-static 2>/dev/null | grep -q "ok installed"; then
  bb="$(dpkg -L busybox-static | grep -m1 -E '/bin/busybox$')"
fi
if [[ -z "$bb" || ! -x "$bb" ]]; then
  log "downloading busybox-static"
  (cd "$work" && apt-get download -q busybox-static >/dev/null 2>&1) || die "apt-get download busybox-static failed"
  dpkg-deb -x "$work"/busybox-static_*.deb "$work/bb"
  bb="$work/bb/bin/busybox"
fi

root="$work/root"
mkdir -p "$root"/{bin,dev,proc,sys,run,tmp,lib/modules}
cp "$bb" "$root/bin/busybox"
for applet in $("$bb" --list); do
  [[ "$applet" == busybox ]] || ln -s busybox "$root/bin/$applet"
done
ln -s bin "$root/sbin"
# busybox insmod does not resolve dependencies: init.sh loads these in dependency order.
for m in virtio_ring virtio virtio_mmio failover net_failover virtio_net button evdev; do
  f="$(find "$moddir" -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" | head -1)"
  [[ -n "$f" ]] || die "module $m not in $kernel_pkg"
  [[ "$f" == *.ko ]] || die "module $m is compressed ($f); busybox insmod needs plain .ko"
  cp "$f" "$root/lib/modules/$m.ko"
done
install -m 0755 "$init_src" "$root/init"
# No /dev/console here: the kernel's built-in initramfs provides it (and devtmpfs later).
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | "$bb" cpio -o -H newc -R 0:0 2>/dev/null) >"$work/initramfs.cpio"
[[ -s "$work/initramfs.cpio" ]] || die "cpio produced no initramfs"

mv -f "$work/vmlinux" "$out/vmlinux"
cp -f "$vmlinuz" "$out/vmlinuz"
mv -f "$work/initramfs.cpio" "$out/initramfs.cpio"
cat >"$out/manifest.json.tmp" <<JSON
{
  "stamp": "$stamp",
  "kernelPackage": "$kernel_pkg",
  "kernelVersion": "$kernel_ver",
  "kernelRelease": "$kver",
  "kernel": "vmlinux",
  "bzImage": "vmlinuz",
  "initramfs": "initramfs.cpio",
  "readyMarker": "MIKROM-READY",
  "builtAt": "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
}
JSON
mv -f "$out/manifest.json.tmp" "$out/manifest.json"
log "built $stamp in $out"
echo "$out"
