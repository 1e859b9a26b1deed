#!/usr/bin/env bash
# offhostd's InventoryService through the real daemon and the Python grpcio client
# (daemon/client.py): the hosts and VMs of its configuration, and with VM_VIEW_FULL the disks
# of real sources as their drivers see them now — a qemu-nbd export (nbd), a raw and a qcow2
# image with a persistent bitmap (image), a running QEMU over QMP (qemu; when
# qemu-system-x86_64 is installed), a LUN of a private tgtd on 127.0.0.1 (iscsi, with
# DiscoverIscsiTargets of its portal; when tgtd is installed) — and a host that does not
# answer, which gives its VM an inventory_error instead of failing the call. After a backup through the daemon the VM shows
# its latest snapshot and the qcow2 disk an incremental next backup. The sources are unchanged.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/qemu_lib.sh"
source "$(dirname "$0")/tgt_lib.sh"
source "$(dirname "$0")/daemon/lib.sh"
need qemu-nbd qemu-img sha256sum

# nbd: a 16 MiB export with some data.
truncate -s 16M "$WORK/web01.raw"
head -c 1M /dev/urandom | dd of="$WORK/web01.raw" bs=1M seek=3 conv=notrunc status=none
URI=$(serve_nbd web01 "$WORK/web01.raw")
# image: a raw disk and a qcow2 one that keeps a persistent bitmap (what a hypervisor leaves).
mkdir -p "$WORK/images"
truncate -s 8M "$WORK/images/web05-vda.raw"
qemu-img create -q -f qcow2 "$WORK/images/web05-vdb.qcow2" 24M
qemu-img bitmap --add --enable "$WORK/images/web05-vdb.qcow2" bm0
qemu-io -f qcow2 -c "write -q -P 0x5a 1M 2M" "$WORK/images/web05-vdb.qcow2" >/dev/null
# iscsi: a 48 MiB LUN with some data, and (where this machine can write LVM labels: a loop
# device and the LVM tools) a 32 MiB LUN holding volume group "san" with one VM disk as a
# logical volume of two 4 MiB extents (shared LVM).
truncate -s 48M "$WORK/lun1.img"
head -c 1M /dev/urandom | dd of="$WORK/lun1.img" bs=1M seek=5 conv=notrunc status=none
truncate -s 32M "$WORK/lun2.img"
HAVE_LVM=0
if (lvm_vg "$WORK/lun2.img" 0 $((32 << 20)) san "web07-disk0 0 2 0") >"$WORK/lvm.log" 2>&1; then
  HAVE_LVM=1
else
  echo "note: no LVM volume group could be made here ($(tail -1 "$WORK/lvm.log")); shared LVM is left out"
fi
SUMS_BEFORE=$(sha256sum "$WORK/web01.raw" "$WORK/images/"* "$WORK/lun1.img" "$WORK/lun2.img")

# qemu: a running VM with one qcow2 disk and a UUID, when QEMU is here.
HAVE_QEMU=0
if command -v qemu-system-x86_64 >/dev/null; then
  HAVE_QEMU=1
  qemu-img create -q -f qcow2 "$WORK/vm1.qcow2" 32M
  start_qemu vm1 "$WORK/vm1.qcow2"
  VM1_UUID=$(cat "$WORK/vm1.uuid")
else
  echo "note: qemu-system-x86_64 is not installed; the qemu host is left out"
fi

HAVE_TGT=0
IQN=iqn.2026-11.test.offhost:inventory
if command -v tgtd >/dev/null && command -v tgtadm >/dev/null; then
  HAVE_TGT=1
  start_tgtd
  add_target 1 "$IQN"
  add_lun 1 1 "$WORK/lun1.img"
  [ "$HAVE_LVM" = 1 ] && add_lun 1 2 "$WORK/lun2.img"
else
  echo "note: tgtd is not installed; the iscsi host is left out"
fi

new_datastore "$WORK/ds"
gen_stubs
SOCK=$WORK/run/offhostd.sock
# A CHAP credential in the daemon's store: its secret is read from a 0600 file.
SECRET="chap-$RANDOM-secret"
echo "$SECRET" >"$WORK/san.secret"
chmod 600 "$WORK/san.secret"
write_daemon_config operator:operator:backup-app reader:read-only:auditor
{
  cat <<EOF2

[[credential]]
name = "san-chap"
kind = "chap"
user = "proxy1"
secret_file = "$WORK/san.secret"
description = "lab SAN"

[[host]]
name = "exports"
driver = "nbd"
description = "exports made by the backup application"

[[vm]]
name = "web01"
host = "exports"
settings = { disks = { vda = "$URI" } }

[[host]]
name = "images"
driver = "image"
settings = { bitmap = "bm0" }

[[vm]]
name = "web05"
host = "images"
settings = { disks = { vda = "$WORK/images/web05-vda.raw", vdb = "$WORK/images/web05-vdb.qcow2" } }

[[host]]
name = "down"
driver = "nbd"

[[vm]]
name = "ghost"
host = "down"
settings = { disks = { vda = "nbd+unix:///vda?socket=$WORK/nobody-serves-this.sock" } }
EOF2
  if [ "$HAVE_QEMU" = 1 ]; then
    cat <<EOF2

[[host]]
name = "qemu1"
driver = "qemu"

[[vm]]
name = "vm1"
host = "qemu1"
settings = { qmp = "$WORK/vm1.qmp" }
EOF2
  fi
  if [ "$HAVE_TGT" = 1 ]; then
    cat <<EOF2

[[host]]
name = "san1"
driver = "iscsi"
settings = { portal = "iscsi://127.0.0.1:$TGT_PORT", initiator-name = "iqn.2026-11.test:proxy", initiator-name-file = "/nonexistent" }

[[vm]]
name = "db02"
host = "san1"
settings = { disks = { sda = "$(iscsi_uri "$IQN" 1)" } }
EOF2
  fi
  if [ "$HAVE_TGT" = 1 ] && [ "$HAVE_LVM" = 1 ]; then
    cat <<EOF2

[[vm]]
name = "web07"
host = "san1"
settings = { disks = { vda = "$(iscsi_uri "$IQN" 2)#san/web07-disk0" } }
EOF2
  fi
} >>"$WORK/offhostd.toml"
"$OFFHOSTD" --check-config "$WORK/offhostd.toml" >/dev/null || fail "the test's config is refused"
"$OFFHOSTD" --config "$WORK/offhostd.toml" 2>"$WORK/offhostd.log" &
track_server offhostd $!
wait_for_socket "$SOCK"
R=(--unix "$SOCK" --token-file "$WORK/reader.token")
O=(--unix "$SOCK" --token-file "$WORK/operator.token")

# The credential store: name, kind and user, never the secret (nor in the log). A secret
# file others may read stops the daemon from starting.
expect "OK credentials/san-chap kind=CREDENTIAL_KIND_CHAP CHAP user proxy1; lab SAN" "${R[@]}" credentials
grep -qF "$SECRET" "$WORK/offhostd.log" && fail "the daemon logged the CHAP secret"
chmod 644 "$WORK/san.secret"
run_expect 1 "$OFFHOSTD" --check-config "$WORK/offhostd.toml"
expect_output "credential[0].secret_file: $WORK/san.secret has mode 0644"
grep -qF "$SECRET" <<<"$OUT" && fail "the config error shows the secret"
chmod 600 "$WORK/san.secret"

# Hosts by name, from the configuration (a read-only token may list them).
MORE_HOSTS=
[ "$HAVE_QEMU" = 1 ] && MORE_HOSTS+=" | hosts/qemu1 driver=DRIVER_QEMU address=$WORK vms=1 ds=datastores/main status=-"
[ "$HAVE_TGT" = 1 ] && MORE_HOSTS+=" | hosts/san1 driver=DRIVER_ISCSI address=iscsi://127.0.0.1:$TGT_PORT vms=$((1 + HAVE_LVM)) ds=datastores/main status=-"
expect "OK hosts/down driver=DRIVER_NBD address=$WORK vms=1 ds=datastores/main status=- | hosts/exports driver=DRIVER_NBD address=$WORK vms=1 ds=datastores/main status=- | hosts/images driver=DRIVER_IMAGE address=$WORK/images vms=1 ds=datastores/main status=-$MORE_HOSTS" \
  "${R[@]}" hosts

# VM_VIEW_BASIC: the configuration only, no disks, no errors (no host is contacted), in pages.
out=$(client "${R[@]}" vms)
[[ $out == "OK hosts/down/vms/ghost uuid=- power=UNSPECIFIED latest=- disks=- excluded=- error=- | hosts/exports/vms/web01 "* ]] ||
  fail "vms (basic): $out"
[[ $out == *"hosts/images/vms/web05 uuid=- power=UNSPECIFIED latest=- disks=- excluded=- error=-"* ]] ||
  fail "vms (basic): $out"
echo "ok: basic view: ${out:0:120}"

# VM_VIEW_FULL: each driver asked now. The host that does not answer gives its VM an error.
out=$(client "${R[@]}" --full vms)
[[ $out == OK* ]] || fail "vms --full failed: $out"
[[ $out == *"hosts/down/vms/ghost uuid=- power=UNSPECIFIED latest=- disks=- excluded=- error=disk vda: cannot open NBD export"*"nobody-serves-this.sock"* ]] ||
  fail "the unreachable VM: $out"
[[ $out == *"hosts/exports/vms/web01 uuid=- power=UNSPECIFIED latest=- disks=vda:16777216:-:full excluded=- error=-"* ]] ||
  fail "the nbd VM: $out"
[[ $out == *"hosts/images/vms/web05 uuid=- power=STOPPED latest=- disks=vda:8388608:raw:full,vdb:25165824:qcow2:full excluded=- error=-"* ]] ||
  fail "the image VM: $out"
if [ "$HAVE_QEMU" = 1 ]; then
  [[ $out == *"hosts/qemu1/vms/vm1 uuid=$VM1_UUID power=RUNNING latest=- disks=vd0:33554432:qcow2:full excluded=- error=-"* ]] ||
    fail "the QEMU VM: $out"
  # The UUID finds it (any case); QMP is free again for the next client (a backup).
  expect "OK hosts/qemu1/vms/vm1 uuid=$VM1_UUID power=RUNNING *" "${R[@]}" --full \
    --uuid "${VM1_UUID^^}" vms
  [ "$(qemu_leftovers vm1)" = "jobs=[] exports=[] nodes=[]" ] || fail "describe left: $(qemu_leftovers vm1)"
fi
if [ "$HAVE_TGT" = 1 ]; then
  [[ $out == *"hosts/san1/vms/db02 uuid=- power=UNSPECIFIED latest=- disks=sda:50331648:raw:full excluded=- error=-"* ]] ||
    fail "the iSCSI VM: $out"
  # The portal's targets and LUNs, logged in to with the host's initiator name.
  expect "OK $IQN luns=*1:disk:50331648:$(iscsi_uri "$IQN" 1)* error=-" "${O[@]}" \
    --name hosts/san1 discover
  # The CLI through the daemon prints what discovery from here prints.
  run_expect 0 "$OFFHOST" discover --server "unix:$SOCK" --token-file "$WORK/operator.token" \
    --host san1 --json
  DAEMON_JSON=$OUT
  run_expect 0 env OFFHOST_INITIATOR_NAME_FILE=/nonexistent "$OFFHOST" discover \
    "iscsi://127.0.0.1:$TGT_PORT" --initiator-name iqn.2026-11.test:proxy --json
  [ "$OUT" = "$DAEMON_JSON" ] || fail "discover --host differs from discovery from here:
$DAEMON_JSON
---
$OUT"
  run_expect 0 "$OFFHOST" discover --server "unix:$SOCK" --token-file "$WORK/operator.token" \
    --host san1
  expect_output "$(iscsi_uri "$IQN" 1)"
  [ "$HAVE_LVM" = 0 ] || expect_output "san/web07-disk0"
  run_expect 4 "$OFFHOST" discover --server "unix:$SOCK" --token-file "$WORK/reader.token" \
    --host san1
  expect_output "ROLE_TOO_LOW"
  run_expect 1 "$OFFHOST" discover --server "unix:$SOCK" --token-file "$WORK/operator.token" \
    --host exports
  expect_output "NOT_AN_ISCSI_HOST"
  echo "ok: offhost discover --host: the same as discovery from here"
  if [ "$HAVE_LVM" = 1 ]; then
    # The logical volume: sized as the LV, not the LUN, and listed by discovery with its URI.
    [[ $out == *"hosts/san1/vms/web07 uuid=- power=UNSPECIFIED latest=- disks=vda:8388608:raw:full excluded=- error=-"* ]] ||
      fail "the shared-LVM VM: $out"
    LV_URI="$(iscsi_uri "$IQN" 2)#san/web07-disk0"
    expect "OK $IQN luns=*2:disk:33554432:$(iscsi_uri "$IQN" 2)\[san/web07-disk0:8388608:$LV_URI\] error=-" \
      "${O[@]}" --name hosts/san1 discover
  fi
fi
echo "ok: full view: every disk's size and format, the unreachable host's error"

# GetVm of the unreachable VM with VM_VIEW_FULL is UNAVAILABLE; its basic view still answers.
expect "UNAVAILABLE reason=HOST_UNREACHABLE host down does not answer: *" "${R[@]}" --full \
  --name hosts/down/vms/ghost vm
expect "OK hosts/down/vms/ghost uuid=- *error=-" "${R[@]}" --name hosts/-/vms/ghost vm
expect "NOT_FOUND reason=VM_NOT_FOUND *" "${R[@]}" --name hosts/-/vms/nope vm
expect "NOT_FOUND reason=HOST_NOT_FOUND *" "${R[@]}" --parent hosts/nope vms

# HOST_VIEW_FULL: whether each host answers now.
out=$(client "${R[@]}" --full hosts)
[[ $out == *"hosts/down driver=DRIVER_NBD "*"status=STATE_UNREACHABLE"* ]] || fail "hosts --full: $out"
[[ $out == *"hosts/images driver=DRIVER_IMAGE "*"status=STATE_REACHABLE"* ]] || fail "hosts --full: $out"
echo "ok: host status: ${out:0:160}"

# iSCSI discovery is for iscsi hosts, and an operator's (it logs in to the SAN).
expect "PERMISSION_DENIED reason=ROLE_TOO_LOW *" "${R[@]}" --name hosts/exports discover
expect "FAILED_PRECONDITION reason=NOT_AN_ISCSI_HOST *" "${O[@]}" --name hosts/exports discover

# A backup through the daemon: the VM then shows its latest snapshot, and the qcow2 disk,
# read with its bitmap, can go incremental next time; the raw one cannot.
run_expect 0 "$OFFHOST" backup --server "unix:$SOCK" --token-file "$WORK/operator.token" --vm web05
expect "OK hosts/images/vms/web05 uuid=- power=STOPPED latest=yes disks=vda:8388608:raw:full,vdb:25165824:qcow2:inc excluded=- error=-" \
  "${R[@]}" --full --name hosts/images/vms/web05 vm
echo "ok: after a backup: latest snapshot, incremental possible on the qcow2 disk"

[ "$(sha256sum "$WORK/web01.raw" "$WORK/images/"* "$WORK/lun1.img" "$WORK/lun2.img")" = \
  "$SUMS_BEFORE" ] ||
  fail "a source changed"
pid=$(server_pid offhostd)
kill -TERM "$pid"
wait "$pid" || fail "offhostd exited $? on SIGTERM"
echo PASS
