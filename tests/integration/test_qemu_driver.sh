#!/usr/bin/env bash
# The qemu driver against a running QEMU (TCG, no guest OS): full, then incremental reading
# only what the guest wrote; the backup holds the disk as it was when the view was taken, not
# later writes; QEMU is left with no job, export or node of ours and exactly one checkpoint;
# a lost checkpoint falls back to a full with the reason; a proxy killed with -9 mid-backup
# leaves the VM running and the next run cleans up and succeeds.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/qemu_lib.sh"
need qemu-system-x86_64 qemu-img qemu-io python3

qemu-img create -q -f qcow2 "$WORK/vm1.qcow2" 256M
qemu-io -f qcow2 -c "write -q -P 0x11 0 8M" -c "write -q -P 0x12 64M 3M" -c "write -q -P 0x13 255M 1M" \
  "$WORK/vm1.qcow2" >/dev/null
start_qemu vm1 "$WORK/vm1.qcow2"
DS=$WORK/ds
"$OFFHOST" datastore init "$DS" >/dev/null
"$OFFHOST" datastore init "$WORK/other-ds" >/dev/null

backup() { "$OFFHOST" backup --datastore "$DS" --driver qemu --qmp "$WORK/vm1.qmp" --json "$@"; }
disk_now() { guest_write vm1 "flush"; export_disk_copy vm1 "$1"; }
no_leftovers() {
  local l
  l=$(qemu_leftovers vm1)
  [ "$l" = "jobs=[] exports=[] nodes=[]" ] || fail "QEMU has leftovers after $1: $l"
  ls "$DS/tmp/views" | grep -q offhost-fleece && fail "scratch file left in $DS/tmp/views after $1"
  return 0
}
one_checkpoint() {
  local b
  b=$(qemu_bitmaps vm1)
  [ "$b" = "$1:True" ] || fail "expected exactly checkpoint $1 recording, QEMU has: $b"
}

# --- full ---------------------------------------------------------------------------------
J=$(backup) || fail "full backup failed: $J"
[ "$(json_field "$J" 'j["disks"][0]["incremental"]')" = False ] || fail "first backup must be full: $J"
json_field "$J" 'j["disks"][0]["full_reason"]' | grep -q "no previous backup" || fail "reason: $J"
[ "$(json_field "$J" 'j["consistency"]')" = crash ] || fail "no agent: must be crash-consistent: $J"
[ "$(json_field "$J" 'j["bytes_read"]')" -eq $((12 << 20)) ] || fail "full read: $J"
CP1=$(json_field "$J" 'j["checkpoint"]')
no_leftovers "the full backup"
one_checkpoint "$CP1"
disk_now "$WORK/at-full.raw"
run_expect 0 "$OFFHOST" restore --datastore "$DS" vm1@latest --to "$WORK/r1.raw"
expect_identical "$WORK/at-full.raw" "$WORK/r1.raw"

# --- incremental, with a write after the point-in-time view ------------------------------
guest_write vm1 "write -P 0xab 10M 1M"
guest_write vm1 "write -P 0xcd 200M 64k"
OFFHOST_TEST_HOLD_VIEW=$WORK/go backup >"$WORK/inc.json" 2>"$WORK/inc.err" &
BACKUP=$!
for _ in $(seq 1 1200); do [ -e "$WORK/go.ready" ] && break; sleep 0.1; done
[ -e "$WORK/go.ready" ] || fail "the backup never took its view: $(cat "$WORK/inc.err")"
disk_now "$WORK/at-view.raw"
run_expect 1 "$OFFHOST" backup --datastore "$WORK/other-ds" --driver qemu --qmp "$WORK/vm1.qmp"
expect_output "another offhost backup of VM vm1 is running"
guest_write vm1 "write -P 0xee 10M 4M"   # after the view: must not be in this backup
touch "$WORK/go"
wait "$BACKUP" || fail "incremental failed: $(cat "$WORK/inc.err")"
J=$(cat "$WORK/inc.json")
[ "$(json_field "$J" 'j["disks"][0]["incremental"]')" = True ] || fail "must be incremental: $J"
READ=$(json_field "$J" 'j["bytes_read"]')
[ "$READ" -ge $(((1 << 20) + (64 << 10))) ] && [ "$READ" -le $((2 << 20)) ] ||
  fail "incremental read $READ bytes for 1 MiB + 64 KiB written: $J"
[ "$(json_field "$J" 'j["parent"]')" != "" ] || fail "incremental without parent: $J"
CP2=$(json_field "$J" 'j["checkpoint"]')
no_leftovers "the incremental"
one_checkpoint "$CP2"
run_expect 0 "$OFFHOST" restore --datastore "$DS" vm1@latest --to "$WORK/r2.raw"
expect_identical "$WORK/at-view.raw" "$WORK/r2.raw"
run_expect 0 "$OFFHOST" restore --datastore "$DS" "vm1@$(json_field "$J" 'j["parent"]')" --to "$WORK/r1b.raw"
expect_identical "$WORK/at-full.raw" "$WORK/r1b.raw"   # the older snapshot is untouched

# --- checkpoint lost between backups → full, with the reason, then incremental again ------
qmp vm1 block-dirty-bitmap-remove "{\"node\": \"disk0\", \"name\": \"$CP2\"}" >/dev/null
J=$(backup) || fail "backup after a lost checkpoint failed: $J"
[ "$(json_field "$J" 'j["disks"][0]["incremental"]')" = False ] || fail "lost checkpoint: must be full: $J"
json_field "$J" 'j["disks"][0]["full_reason"]' | grep -q "is not on disk vd0" || fail "reason: $J"
guest_write vm1 "write -P 0x44 30M 64k"
J=$(backup) || fail "backup after the fallback failed: $J"
[ "$(json_field "$J" 'j["disks"][0]["incremental"]')" = True ] || fail "chain must resume: $J"
[ "$(json_field "$J" 'j["bytes_read"]')" -eq $((64 << 10)) ] || fail "resumed chain read: $J"

# --- proxy killed with -9 while it holds the view -----------------------------------------
rm -f "$WORK/go" "$WORK/go.ready"
guest_write vm1 "write -P 0x55 40M 128k"
# (offhost itself in the background, so that $! is its pid, not a subshell's)
OFFHOST_TEST_HOLD_VIEW=$WORK/go "$OFFHOST" backup --datastore "$DS" --driver qemu --qmp "$WORK/vm1.qmp" >/dev/null 2>&1 &
BACKUP=$!
for _ in $(seq 1 1200); do [ -e "$WORK/go.ready" ] && break; sleep 0.1; done
[ -e "$WORK/go.ready" ] || fail "the backup to be killed never took its view"
kill -9 "$BACKUP"
wait "$BACKUP" 2>/dev/null || true
[ "$(qemu_leftovers vm1)" != "jobs=[] exports=[] nodes=[]" ] || fail "expected leftovers right after kill -9"
kill -0 "$QEMU_PID" || fail "QEMU died with the proxy"
qmp vm1 query-status | grep -q '"running": true' || fail "VM not running after the proxy died"
guest_write vm1 "write -P 0x66 50M 64k"
J=$(backup) || fail "backup after kill -9 failed: $J"
[ "$(json_field "$J" 'j["disks"][0]["incremental"]')" = True ] || fail "after kill -9 the chain must hold: $J"
[ "$(json_field "$J" 'j["bytes_read"]')" -eq $(((128 + 64) << 10)) ] || fail "after kill -9 read: $J"
no_leftovers "the backup after kill -9"
one_checkpoint "$(json_field "$J" 'j["checkpoint"]')"
disk_now "$WORK/now.raw"
run_expect 0 "$OFFHOST" restore --datastore "$DS" vm1@latest --to "$WORK/r3.raw"
expect_identical "$WORK/now.raw" "$WORK/r3.raw"
run_expect 0 "$OFFHOST" verify --datastore "$DS"

# --- the VM restarts cleanly: its persistent checkpoint survives, the chain goes on --------
restart_qemu() {  # restart_qemu clean|crash
  if [ "$1" = clean ]; then qmp vm1 quit >/dev/null || true; else kill -9 "$QEMU_PID"; fi
  wait "$QEMU_PID" 2>/dev/null || true
  rm -f "$WORK/vm1.qmp"
  start_qemu vm1 "$WORK/vm1.qcow2"
}
restart_qemu clean
guest_write vm1 "write -P 0x77 60M 64k"
J=$(backup) || fail "backup after a VM restart failed: $J"
[ "$(json_field "$J" 'j["disks"][0]["incremental"]')" = True ] || fail "persistent checkpoint lost on restart: $J"
[ "$(json_field "$J" 'j["bytes_read"]')" -eq $((64 << 10)) ] || fail "after a restart, read: $J"

# --- QEMU crashes: its loaded bitmap is inconsistent → full with the reason, then incremental
restart_qemu clean   # the checkpoint of the last backup is now stored in the image
restart_qemu crash
J=$(backup) || fail "backup after a QEMU crash failed: $J"
[ "$(json_field "$J" 'j["disks"][0]["incremental"]')" = False ] || fail "after a QEMU crash: must be full: $J"
json_field "$J" 'j["disks"][0]["full_reason"]' | grep -q "inconsistent" || fail "reason: $J"
guest_write vm1 "write -P 0x78 61M 64k"
J=$(backup) || fail "backup after the crash fallback failed: $J"
[ "$(json_field "$J" 'j["disks"][0]["incremental"]')" = True ] || fail "chain must resume after a QEMU crash: $J"
no_leftovers "the backups after QEMU restarts"

# --- bad input ----------------------------------------------------------------------------
run_expect 1 "$OFFHOST" backup --datastore "$DS" --driver qemu --qmp "$WORK/nope.qmp"
expect_output "cannot connect to QMP socket $WORK/nope.qmp"
python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1)
c, _ = s.accept(); c.sendall(b"220 hello, I am not QEMU\r\n"); time.sleep(10)' "$WORK/fake.sock" &
PIDS+=($!)
wait_for_socket "$WORK/fake.sock"
run_expect 2 "$OFFHOST" backup --datastore "$DS" --driver qemu --qmp "$WORK/fake.sock"
expect_output "is not a QEMU QMP socket"
run_expect 2 "$OFFHOST" backup --datastore "$DS" --driver qemu
expect_output "needs --qmp SOCKET"
run_expect 1 "$OFFHOST" backup --datastore "$DS" --driver qemu --qmp "$WORK/vm1.qmp" --disk vdz
expect_output "has no disk 'vdz' (it has: vd0)"
[ "$(qemu_leftovers vm1)" = "jobs=[] exports=[] nodes=[]" ] || fail "leftovers after a bad --disk"
run_expect 2 "$OFFHOST" backup --datastore "$DS" --driver vmware --vm x
expect_output "unknown driver 'vmware'"
echo PASS
