# A private libvirtd for tests: its own sockets under $WORK, transient domains only (nothing
# is defined persistently). Source after lib.sh. Needs root (system mode).

# start_libvirtd: starts virtlogd (if none runs) and a libvirtd on $WORK/libvirt; sets
# LIBVIRT_URI. libvirt's qemu.conf must let QEMU run as root without a security driver in a
# container; the lines are added once, marked, if missing.
start_libvirtd() {
  [ "$(id -u)" -eq 0 ] || { echo "SKIP: libvirt tests need root"; exit 77; }
  need libvirtd virtlogd virsh
  mkdir -p /var/log/libvirt /var/run/libvirt /etc/libvirt "$WORK/libvirt"
  id libvirt-qemu >/dev/null 2>&1 || useradd -r -M libvirt-qemu
  groupadd -f kvm
  if ! grep -q '^# offhost tests' /etc/libvirt/qemu.conf 2>/dev/null; then
    printf '# offhost tests: QEMU as root, no security driver (containers)\nuser = "root"\ngroup = "root"\nsecurity_driver = "none"\n' \
      >>/etc/libvirt/qemu.conf
  fi
  pgrep -x virtlogd >/dev/null || virtlogd -d
  cat >"$WORK/libvirt/libvirtd.conf" <<CONF
unix_sock_dir = "$WORK/libvirt"
auth_unix_rw = "none"
auth_unix_ro = "none"
CONF
  # libvirtd's drivers keep global state under /run/libvirt: one daemon per machine. Use the
  # machine's own when it already runs one.
  if pgrep -x libvirtd >/dev/null && virsh -c qemu:///system version >/dev/null 2>&1; then
    LIBVIRT_URI=qemu:///system
    return 0
  fi
  libvirtd --config "$WORK/libvirt/libvirtd.conf" --pid-file "$WORK/libvirt/libvirtd.pid" \
    >"$WORK/libvirt/libvirtd.log" 2>&1 &
  PIDS+=($!)
  echo "$!" >>"$WORK/.pids"
  for _ in $(seq 1 100); do
    [ -S "$WORK/libvirt/libvirt-sock" ] && break
    if grep -q "Failed to acquire pid file" "$WORK/libvirt/libvirtd.log" 2>/dev/null; then
      echo "SKIP: another libvirtd runs on this machine with its own sockets"
      exit 77
    fi
    sleep 0.1
  done
  wait_for_socket "$WORK/libvirt/libvirt-sock"
  LIBVIRT_URI="qemu:///system?socket=$WORK/libvirt/libvirt-sock"
  for _ in $(seq 1 50); do virsh -c "$LIBVIRT_URI" version >/dev/null 2>&1 && return 0; sleep 0.2; done
  fail "libvirtd did not answer: $(tail -5 "$WORK/libvirt/libvirtd.log")"
}

V() { virsh -q -c "$LIBVIRT_URI" "$@"; }

# create_domain NAME DISK.qcow2: a transient domain with DISK as vda and an empty CD-ROM.
create_domain() {
  local name=$1 disk=$2
  cat >"$WORK/$name.xml" <<XML
<domain type='qemu'>
  <name>$name</name>
  <memory unit='MiB'>64</memory>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$disk'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <target dev='sda' bus='sata'/>
      <readonly/>
    </disk>
  </devices>
</domain>
XML
  V create "$WORK/$name.xml" >/dev/null || fail "could not start domain $name"
  DOMAINS+=("$name")
}

# domain_write NAME "qemu-io command": writes through the guest's disk device.
domain_write() {
  V qemu-monitor-command "$1" --hmp \
    "qemu-io -d /machine/peripheral/virtio-disk0/virtio-backend \"$2\"" >/dev/null ||
    fail "guest write '$2' failed"
}

destroy_domains() {
  local d
  for d in "${DOMAINS[@]:-}"; do [ -n "$d" ] && V destroy "$d" >/dev/null 2>&1 || true; done
}
DOMAINS=()
