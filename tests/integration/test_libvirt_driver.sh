#!/usr/bin/env bash
# The libvirt driver against a private libvirtd and a transient domain (TCG, no guest OS):
# full, then incremental reading only what the guest wrote; later writes stay out of the
# backup; no backup job or scratch file remains and checkpoints are exactly what the chain
# needs; a deleted checkpoint falls back to a full with the reason; a proxy killed with -9
# mid-backup leaves the VM running and the next run cleans up; bad input is named.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/libvirt_lib.sh"
need qemu-system-x86_64 qemu-img qemu-io python3
start_libvirtd
trap 'destroy_domains; cleanup' EXIT

DOM=offhost-it-$$
DISK=$WORK/$DOM.qcow2
qemu-img create -q -f qcow2 "$DISK" 256M
qemu-io -f qcow2 -c "write -q -P 0x11 0 8M" -c "write -q -P 0x12 64M 3M" "$DISK" >/dev/null
create_domain "$DOM" "$DISK"
DS=$WORK/ds
"$OFFHOST" datastore init "$DS" >/dev/null

backup() {
  "$OFFHOST" backup --datastore "$DS" --driver libvirt --connect "$LIBVIRT_URI" --domain "$DOM" --json "$@"
}
disk_now() { domain_write "$DOM" "flush"; qemu-img convert -U -f qcow2 -O raw "$DISK" "$1"; }
checkpoints() { V checkpoint-list "$DOM" --name | sort | tr '\n' ' ' | sed 's/ $//'; }
no_leftovers() {
  V domjobinfo "$DOM" | grep -q "Job type: *None" || fail "a job is still running after $1: $(V domjobinfo "$DOM")"
  ls "$DS/tmp/views" | grep -q offhost-scratch && fail "scratch file left after $1: $(ls "$DS/tmp/views")"
  return 0
}

# --- full ---------------------------------------------------------------------------------
J=$(backup) || fail "full backup failed: $J"
[ "$(json_field "$J" 'j["disks"][0]["incremental"]')" = False ] || fail "first backup must be full: $J"
[ "$(json_field "$J" 'j["vm_uuid"]')" = "$(V domuuid "$DOM")" ] || fail "UUID not recorded: $J"
[ "$(json_field "$J" 'len(j["disks"])')" -eq 1 ] || fail "only vda can be backed up: $J"
json_field "$J" 'j["excluded"][0]["reason"]' | grep -q "cdrom" || fail "the CD-ROM must be listed as excluded: $J"
json_field "$J" 'j["consistency_reason"]' | grep -q "guest agent" || fail "consistency reason: $J"
CP1=$(json_field "$J" 'j["checkpoint"]')
[ "$(checkpoints)" = "$CP1" ] || fail "checkpoints after the full: $(checkpoints)"
no_leftovers "the full backup"
"$OFFHOST" snapshots --datastore "$DS" --json | grep -q "$DOM" || fail "snapshot not listed"

# --- incremental, with a write after the point-in-time view ------------------------------
domain_write "$DOM" "write -P 0xab 100M 4M"
OFFHOST_TEST_HOLD_VIEW=$WORK/go backup >"$WORK/inc.json" 2>"$WORK/inc.err" &
BACKUP=$!
for _ in $(seq 1 1200); do [ -e "$WORK/go.ready" ] && break; sleep 0.1; done
[ -e "$WORK/go.ready" ] || fail "the backup never took its view: $(cat "$WORK/inc.err")"
disk_now "$WORK/at-view.raw"
domain_write "$DOM" "write -P 0xee 100M 1M"   # after the view
touch "$WORK/go"
wait "$BACKUP" || fail "incremental failed: $(cat "$WORK/inc.err")"
J=$(cat "$WORK/inc.json")
[ "$(json_field "$J" 'j["disks"][0]["incremental"]')" = True ] || fail "must be incremental: $J"
[ "$(json_field "$J" 'j["bytes_read"]')" -eq $((4 << 20)) ] || fail "incremental must read the 4 MiB written: $J"
CP2=$(json_field "$J" 'j["checkpoint"]')
[ "$(checkpoints)" = "$CP2" ] || fail "checkpoints after the incremental: $(checkpoints)"
no_leftovers "the incremental"
run_expect 0 "$OFFHOST" restore --datastore "$DS" "$DOM@latest" --to "$WORK/r2.raw"
expect_identical "$WORK/at-view.raw" "$WORK/r2.raw"

# --- checkpoint deleted behind offhost's back → full with the reason, then incremental ----
V checkpoint-delete "$DOM" "$CP2" >/dev/null
J=$(backup) || fail "backup after a deleted checkpoint failed: $J"
[ "$(json_field "$J" 'j["disks"][0]["incremental"]')" = False ] || fail "must fall back to full: $J"
json_field "$J" 'j["disks"][0]["full_reason"]' | grep -q "not known to libvirt" || fail "reason: $J"
domain_write "$DOM" "write -P 0x44 30M 1M"
J=$(backup) || fail "backup after the fallback failed: $J"
[ "$(json_field "$J" 'j["disks"][0]["incremental"]')" = True ] || fail "chain must resume: $J"
[ "$(json_field "$J" 'j["bytes_read"]')" -eq $((1 << 20)) ] || fail "resumed chain read: $J"

# --- proxy killed with -9 while it holds the view -----------------------------------------
rm -f "$WORK/go" "$WORK/go.ready"
domain_write "$DOM" "write -P 0x55 40M 1M"
# (offhost itself in the background, so that $! is its pid, not a subshell's)
OFFHOST_TEST_HOLD_VIEW=$WORK/go "$OFFHOST" backup --datastore "$DS" --driver libvirt --connect "$LIBVIRT_URI" --domain "$DOM" >/dev/null 2>&1 &
BACKUP=$!
for _ in $(seq 1 1200); do [ -e "$WORK/go.ready" ] && break; sleep 0.1; done
[ -e "$WORK/go.ready" ] || fail "the backup to be killed never took its view"
kill -9 "$BACKUP"
wait "$BACKUP" 2>/dev/null || true
# (libvirt may end a pull-mode job whose client went away; either way the next run must cope)
grep -q "Backup" <<<"$(V domjobinfo "$DOM")" && echo "the killed proxy's backup job is still running"
[ "$(V domstate "$DOM")" = running ] || fail "the VM must keep running"
domain_write "$DOM" "write -P 0x66 50M 1M"
J=$(backup) || fail "backup after kill -9 failed: $J"
[ "$(json_field "$J" 'j["disks"][0]["incremental"]')" = True ] || fail "after kill -9 the chain must hold: $J"
[ "$(json_field "$J" 'j["bytes_read"]')" -eq $((2 << 20)) ] || fail "after kill -9, read: $J"
[ "$(checkpoints)" = "$(json_field "$J" 'j["checkpoint"]')" ] || fail "checkpoints after recovery: $(checkpoints)"
no_leftovers "the backup after kill -9"
disk_now "$WORK/now.raw"
run_expect 0 "$OFFHOST" restore --datastore "$DS" "$DOM@latest" --to "$WORK/r3.raw"
expect_identical "$WORK/now.raw" "$WORK/r3.raw"
run_expect 0 "$OFFHOST" verify --datastore "$DS"

# --- a disk hot-added to the running VM: its first backup is full, vda stays incremental ---
qemu-img create -q -f qcow2 "$WORK/vdb.qcow2" 64M
qemu-io -f qcow2 -c "write -q -P 0x21 0 2M" "$WORK/vdb.qcow2" >/dev/null
V attach-disk "$DOM" "$WORK/vdb.qcow2" vdb --driver qemu --subdriver qcow2 --targetbus virtio --live >/dev/null ||
  fail "could not hot-add vdb"
domain_write "$DOM" "write -P 0x31 70M 1M"
J=$(backup) || fail "backup after adding a disk failed: $J"
[ "$(json_field "$J" '[d["name"] for d in j["disks"] if d["incremental"]]')" = "['vda']" ] ||
  fail "vda must stay incremental and vdb be full: $J"
json_field "$J" '[d["full_reason"] for d in j["disks"] if d["name"]=="vdb"][0]' | grep -q "is not in checkpoint" ||
  fail "reason for vdb: $J"
J=$(backup) || fail "second backup with vdb failed: $J"
[ "$(json_field "$J" 'all(d["incremental"] for d in j["disks"])')" = True ] || fail "both disks incremental now: $J"
no_leftovers "backups with a hot-added disk"
disk_now "$WORK/now.raw"

# --- listing, the stored domain XML, lookup by UUID ---------------------------------------
run_expect 0 "$OFFHOST" snapshots --datastore "$DS" --vm "$DOM"
expect_output "incremental"
expect_output "full"
run_expect 0 "$OFFHOST" snapshots --datastore "$DS" --config "$DOM@latest"
expect_output "<name>$DOM</name>"
expect_output "$DISK"
run_expect 0 "$OFFHOST" restore --datastore "$DS" "$(V domuuid "$DOM")@latest" --disk vda --to "$WORK/by-uuid.raw"
expect_identical "$WORK/now.raw" "$WORK/by-uuid.raw"

# --- bad input ----------------------------------------------------------------------------
run_expect 1 "$OFFHOST" backup --datastore "$DS" --driver libvirt \
  --connect "qemu:///system?socket=$WORK/nowhere.sock" --domain "$DOM"
expect_output "cannot connect to libvirt"
run_expect 1 "$OFFHOST" backup --datastore "$DS" --driver libvirt --connect "$LIBVIRT_URI" --domain no-such-vm
expect_output "libvirt has no domain 'no-such-vm'"
run_expect 2 "$OFFHOST" backup --datastore "$DS" --driver libvirt --connect "$LIBVIRT_URI"
expect_output "--domain"
run_expect 1 "$OFFHOST" backup --datastore "$DS" --driver libvirt --connect "$LIBVIRT_URI" --domain "$DOM" --disk vdz
expect_output "has no disk 'vdz' (it has: vda, vdb, sda)"
no_leftovers "a bad --disk"
echo PASS
