#!/usr/bin/env bash
# offhostd's InventoryService for a libvirt host, against a private libvirtd and a transient
# domain (TCG, no guest OS): VM_VIEW_FULL gives the domain's UUID, power state and disk (size,
# format, source) with its CD-ROM excluded; the UUID finds it in any case; after a backup
# through the daemon the disk can go incremental (the checkpoint tracks it); a libvirt host
# whose daemon is not there gives its VM an inventory_error and shows unreachable. Nothing
# is left on the domain (no backup job; only the backup's checkpoint).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/libvirt_lib.sh"
source "$(dirname "$0")/daemon/lib.sh"
need qemu-system-x86_64 qemu-img qemu-io
start_libvirtd
trap 'destroy_domains; cleanup' EXIT

DOM=offhost-inv-$$
DISK=$WORK/$DOM.qcow2
qemu-img create -q -f qcow2 "$DISK" 64M
qemu-io -f qcow2 -c "write -q -P 0x21 0 2M" "$DISK" >/dev/null
create_domain "$DOM" "$DISK"
UUID=$(V domuuid "$DOM")

new_datastore "$WORK/ds"
gen_stubs
SOCK=$WORK/run/offhostd.sock
write_daemon_config
cat >>"$WORK/offhostd.toml" <<EOF2

[[host]]
name = "kvm1"
driver = "libvirt"
settings = { connect = "$LIBVIRT_URI" }

[[vm]]
name = "web01"
host = "kvm1"
settings = { domain = "$DOM" }

[[host]]
name = "kvm9"
driver = "libvirt"
settings = { connect = "qemu:///system?socket=$WORK/no-libvirtd-here.sock" }

[[vm]]
name = "db09"
host = "kvm9"
settings = { domain = "db09" }
EOF2
"$OFFHOSTD" --config "$WORK/offhostd.toml" 2>"$WORK/offhostd.log" &
track_server offhostd $!
wait_for_socket "$SOCK"
O=(--unix "$SOCK" --token-file "$WORK/operator.token")

out=$(client "${O[@]}" --full vms)
[[ $out == "OK hosts/kvm1/vms/web01 uuid=$UUID power=RUNNING latest=- disks=vda:67108864:qcow2:full excluded=sda error=- | "* ]] ||
  fail "the libvirt VM: $out"
[[ $out == *"hosts/kvm9/vms/db09 uuid=- power=UNSPECIFIED latest=- disks=- excluded=- error=cannot connect to libvirt at qemu:///system?socket=$WORK/no-libvirtd-here.sock"* ]] ||
  fail "the VM of the absent libvirtd: $out"
echo "ok: full view: ${out:0:150}"
expect "OK hosts/kvm1/vms/web01 uuid=$UUID *" "${O[@]}" --full --uuid "${UUID^^}" vms
expect "OK hosts/kvm1/vms/web01 uuid=$UUID *" "${O[@]}" --full --name "$DOM" vms
expect "UNAVAILABLE reason=HOST_UNREACHABLE host kvm9 does not answer: cannot connect to libvirt*" \
  "${O[@]}" --full --name hosts/kvm9/vms/db09 vm
out=$(client "${O[@]}" --full hosts)
[[ $out == *"hosts/kvm1 driver=DRIVER_LIBVIRT address=$LIBVIRT_URI vms=1 ds=datastores/main status=STATE_REACHABLE"* &&
  $out == *"hosts/kvm9 driver=DRIVER_LIBVIRT "*"status=STATE_UNREACHABLE"* ]] || fail "hosts --full: $out"
echo "ok: host status"
V domjobinfo "$DOM" | grep -q "Job type: *None" || fail "describing left a job: $(V domjobinfo "$DOM")"
[ -z "$(V checkpoint-list "$DOM" --name)" ] || fail "describing made a checkpoint"

# After a backup through the daemon the checkpoint tracks vda: the next one can be incremental.
run_expect 0 "$OFFHOST" backup --server "unix:$SOCK" --token-file "$WORK/operator.token" --vm web01
expect "OK hosts/kvm1/vms/web01 uuid=$UUID power=RUNNING latest=yes disks=vda:67108864:qcow2:inc excluded=sda error=-" \
  "${O[@]}" --full --name hosts/-/vms/web01 vm
echo "ok: after a backup the disk can go incremental"

pid=$(server_pid offhostd)
kill -TERM "$pid"
wait "$pid" || fail "offhostd exited $? on SIGTERM"
echo PASS
