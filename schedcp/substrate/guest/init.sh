#!/bin/busybox sh
# PID 1 of a schedcp micro-VM (runs from the initramfs, busybox only).
#
# Mounts the host's root read-only over virtiofs at /host, gives it the
# pseudo-filesystems a sched_ext workload needs (bpffs, debugfs, tracefs,
# tmpfs for /tmp and /run), then chroots there and runs the guest agent with
# the host's own python. When the agent exits the VM reboots, which qemu
# (-no-reboot) turns into a clean exit. Anything printed here goes to the
# serial console log, never to the results channel.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
say() { echo "schedcp-init: $*" > /dev/console; }
fail() { say "FATAL: $*"; reboot -f; sleep 5; }

# Extra modules named in the per-job archive, already decompressed, in order.
if [ -f /schedcp/modules ]; then
  while read -r ko; do
    [ -n "$ko" ] && { insmod "/lib/modules/$ko" || say "insmod $ko failed"; }
  done < /schedcp/modules
fi

# udev is absent: name the virtio-serial ports the way udev would.
mkdir -p /dev/virtio-ports
for p in /sys/class/virtio-ports/vport*; do
  [ -e "$p/name" ] && ln -sf "../${p##*/}" "/dev/virtio-ports/$(cat "$p/name")"
done

mkdir -p /host
mount -t virtiofs -o ro hostroot /host || fail "cannot mount the host root over virtiofs"
mount -t proc proc /host/proc
mount -t sysfs sys /host/sys
mount -t devtmpfs dev /host/dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /host/dev/pts
mount -t tmpfs -o mode=1777 tmpfs /host/dev/shm
mount -t tmpfs -o mode=1777 tmpfs /host/tmp
mount -t tmpfs -o mode=755 tmpfs /host/run
[ -d /host/var/tmp ] && mount -t tmpfs -o mode=1777 tmpfs /host/var/tmp
mount -t bpf bpf /host/sys/fs/bpf
mount -t debugfs debugfs /host/sys/kernel/debug
mount -t tracefs tracefs /host/sys/kernel/tracing 2>/dev/null
mkdir -p /host/run/schedcp
cp -a /schedcp/. /host/run/schedcp/
hostname schedcp-vm

PY=$(cat /schedcp/python)
cut -d' ' -f1 /proc/uptime > /host/run/schedcp/init_uptime
say "ready for agent ($PY)"
HOME=/tmp PYTHONDONTWRITEBYTECODE=1 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  chroot /host "$PY" -I -S /run/schedcp/agent.py
say "agent exited ($?)"
sync
reboot -f
