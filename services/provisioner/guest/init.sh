#!/bin/sh
# /init of the Mikrom microVM guest (busybox). Reads its identity and address from the kernel
# command line (mikrom.vm= mikrom.ip=<addr>/<prefix> mikrom.gw=), configures eth0, then prints
#   MIKROM-READY vm=<id> ip=<address/prefix as eth0 holds it>
# on the console, which is what the driver waits for. On a failed step it prints
#   MIKROM-FAILED vm=<id> step=<step> reason=<text>
# so the driver fails fast instead of waiting for its deadline. Then it waits for the ACPI power
# button (QMP system_powerdown) and powers off. /init must never exit: that panics the kernel.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null

vm=unknown ip="" gw=""
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    mikrom.vm=*) vm="${arg#mikrom.vm=}" ;;
    mikrom.ip=*) ip="${arg#mikrom.ip=}" ;;
    mikrom.gw=*) gw="${arg#mikrom.gw=}" ;;
  esac
done

fail() {
  echo "MIKROM-FAILED vm=$vm step=$1 reason=$2"
  while :; do sleep 3600; done
}

# Dependency order: busybox insmod does not resolve it.
for m in virtio_ring virtio virtio_mmio failover net_failover virtio_net; do
  insmod "/lib/modules/$m.ko" || fail modules "insmod $m"
done
# Power button: optional, a guest without it is only stopped by quit or kill.
insmod /lib/modules/button.ko 2>/dev/null
insmod /lib/modules/evdev.ko 2>/dev/null

ip link set lo up
# virtio_net probes asynchronously: give eth0 a moment to appear.
n=0
while [ ! -e /sys/class/net/eth0 ]; do
  n=$((n + 1))
  [ "$n" -gt 200 ] && fail network "no eth0"
  usleep 10000
done
if [ -n "$ip" ]; then
  ip addr add "$ip" dev eth0 || fail network "ip addr add $ip"
fi
ip link set eth0 up || fail network "link up"
if [ -n "$gw" ]; then
  ip route add default via "$gw" dev eth0 || fail network "route via $gw"
fi
held="$(ip -o -4 addr show dev eth0 | awk '{ print $4; exit }')"
echo "MIKROM-READY vm=$vm ip=${held:-none}"

# The ACPI power button shows up as an input device named "Power Button"; any event from it is
# a power-down request (QMP system_powerdown).
ev=""
for d in /sys/class/input/event*; do
  [ -e "$d/device/name" ] || continue
  case "$(cat "$d/device/name")" in *"Power Button"*) ev="/dev/${d#/sys/class/}" ;; esac
done
if [ -n "$ev" ]; then
  # struct input_event on x86_64 is 24 bytes: timeval (16), type (u16), code (u16), value (s32).
  # Only EV_KEY (1) KEY_POWER (116) counts: the device also reports other events at start.
  exec 3<"$ev"
  while :; do
    set -- $(dd bs=24 count=1 <&3 2>/dev/null | od -An -tu2 -j16 -N4)
    [ "$1" = 1 ] && [ "$2" = 116 ] && break
  done
  echo "MIKROM-POWEROFF vm=$vm"
  sync
  poweroff -f
fi
while :; do sleep 3600; done
