# Helpers for tests that run a QEMU VM (no guest OS: a disk is all a backup needs).
# Source after lib.sh.

QMP_PY="$(dirname "${BASH_SOURCE[0]}")/qmp.py"

# start_qemu NAME DISK.qcow2: starts QEMU (TCG) with DISK as virtio-blk device "vd0" and a QMP
# socket at $WORK/NAME.qmp; sets QEMU_PID.
start_qemu() {
  local name=$1 disk=$2
  # The same VM keeps its UUID across restarts.
  [ -e "$WORK/$name.uuid" ] || cat /proc/sys/kernel/random/uuid >"$WORK/$name.uuid"
  qemu-system-x86_64 -machine q35 -accel tcg -nodefaults -display none -m 64 -name "$name" \
    -uuid "$(cat "$WORK/$name.uuid")" \
    -blockdev "driver=file,filename=$disk,node-name=file0" \
    -blockdev driver=qcow2,file=file0,node-name=disk0 \
    -device virtio-blk-pci,drive=disk0,id=vd0 \
    -qmp "unix:$WORK/$name.qmp,server=on,wait=off" >"$WORK/$name.qemu.log" 2>&1 &
  QEMU_PID=$!
  PIDS+=("$QEMU_PID")
  wait_for_socket "$WORK/$name.qmp"
  # The socket exists before the disks are opened; QMP answers only once QEMU is set up (and
  # has marked the image's persistent bitmaps in use, which the crash test relies on).
  qmp "$name" query-status >/dev/null
}

# qmp NAME COMMAND [JSON]: runs a QMP command on VM NAME, prints its return value.
qmp() { python3 "$QMP_PY" "$WORK/$1.qmp" "$2" "${3:-null}"; }

# guest_write NAME "qemu-io command": writes through the guest's virtio device, as the guest would.
guest_write() {
  local out
  out=$(qmp "$1" human-monitor-command \
    "{\"command-line\": \"qemu-io -d /machine/peripheral/vd0/virtio-backend \\\"$2\\\"\"}")
  [ "$out" = '""' ] || fail "guest write '$2' failed: $out"
}

# qemu_leftovers NAME: prints jobs, exports and node names other than the VM's own, one line.
qemu_leftovers() {
  local jobs exports nodes
  jobs=$(qmp "$1" query-block-jobs)
  exports=$(qmp "$1" query-block-exports)
  nodes=$(qmp "$1" query-named-block-nodes '{"flat": true}' |
    python3 -c 'import json,sys; print(" ".join(sorted(n["node-name"] for n in json.load(sys.stdin) if n["node-name"] not in ("disk0","file0"))))')
  echo "jobs=$jobs exports=$exports nodes=[$nodes]"
}

# qemu_bitmaps NAME: the named dirty bitmaps on node disk0, "name:recording" space-separated
# (asked of the node itself: during a backup a filter node sits above it in query-block; the
# backup job's own bitmaps have no name and are left out).
qemu_bitmaps() {
  qmp "$1" query-named-block-nodes '{"flat": true}' | python3 -c 'import json,sys
d=[n for n in json.load(sys.stdin) if n["node-name"] == "disk0"][0]
print(" ".join("%s:%s" % (b["name"], b["recording"]) for b in d.get("dirty-bitmaps", []) if "name" in b))'
}

# export_disk_copy NAME OUT: a raw copy of the VM's disk as it is now (read with -U while it runs).
export_disk_copy() {
  qemu-img convert -U -f qcow2 -O raw "$WORK/$1.qcow2" "$2"
}
