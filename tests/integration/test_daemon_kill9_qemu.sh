#!/usr/bin/env bash
# offhostd killed with -9 while a backup of a running QEMU VM (qemu driver) holds its view:
# QEMU is left with our fleecing node, block job, NBD export and a new checkpoint bitmap, the
# parent checkpoint frozen. At the restart the daemon releases them before any new backup:
# QEMU has no job, export or node of ours, one checkpoint (the parent) and it records again;
# the VM still runs; the job shows INTERRUPTED with what was released; `offhost verify` is
# clean; the next backup through the daemon is an incremental against the parent.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/qemu_lib.sh"
source "$(dirname "$0")/daemon/lib.sh"
need qemu-system-x86_64 qemu-img qemu-io

qemu-img create -q -f qcow2 "$WORK/vm1.qcow2" 64M
qemu-io -f qcow2 -c "write -q -P 0x11 0 4M" -c "write -q -P 0x12 40M 2M" "$WORK/vm1.qcow2" >/dev/null
start_qemu vm1 "$WORK/vm1.qcow2"
SOCK=$WORK/run/offhostd.sock
HOLD=$WORK/hold
new_datastore "$WORK/ds"
write_daemon_config
cat >>"$WORK/offhostd.toml" <<EOF2

[[host]]
name = "qemu1"
driver = "qemu"
datastore = "main"

[[vm]]
name = "vm1"
host = "qemu1"
settings = { qmp = "$WORK/vm1.qmp" }
EOF2
D=(--server "unix:$SOCK" --token-file "$WORK/operator.token")
NONE="jobs=[] exports=[] nodes=[]"

# A first backup, so the interrupted one is an incremental with a parent checkpoint.
touch "$HOLD"
start_daemon
run_expect 0 "$OFFHOST" backup "${D[@]}" --vm vm1 --json
PARENT=$(json_field "$OUT" 'j["checkpoint"]')
[ "$(qemu_bitmaps vm1)" = "$PARENT:True" ] || fail "after the first backup: $(qemu_bitmaps vm1)"

# The second backup holds its view; offhostd is killed with -9 meanwhile.
rm -f "$HOLD" "$HOLD.ready"
guest_write vm1 "write -P 0x33 8M 128k"
"$OFFHOST" backup "${D[@]}" --vm vm1 >"$WORK/killed.out" 2>&1 &
CLI=$!
for _ in $(seq 1 600); do [ -e "$HOLD.ready" ] && break; sleep 0.1; done
[ -e "$HOLD.ready" ] || fail "the backup never took its view: $(tail -5 "$WORK/offhostd.log")"
kill -9 "$(server_pid offhostd)"
LEFT=$(qemu_leftovers vm1)
[[ $LEFT == *"offhost-fleece-vd0"* && $LEFT == *"offhost-job-vd0"* && $LEFT == *"offhost-export-vd0"* ]] ||
  fail "expected our node, job and export in QEMU after kill -9: $LEFT"
BITMAPS=$(qemu_bitmaps vm1)
[[ $BITMAPS == *"$PARENT:False"* && $(wc -w <<<"$BITMAPS") = 2 ]] ||
  fail "expected the frozen parent and a new checkpoint after kill -9: $BITMAPS"
echo "ok: after kill -9 QEMU holds: $LEFT; bitmaps $BITMAPS"

# Restart: the leftovers are released in the background; the job says what went.
touch "$HOLD"
start_daemon
for _ in $(seq 1 300); do
  run_expect 0 "$OFFHOST" jobs "${D[@]}" --json
  WARN=$(json_field "$OUT" '" | ".join(w for x in j for w in x.get("warnings", []))')
  [[ $WARN == *"released at offhostd's start"* ]] && break
  sleep 0.1
done
[[ $WARN == *"released at offhostd's start"*"offhost-export-vd0"*"offhost-job-vd0"*"offhost-fleece-vd0"* ]] ||
  fail "the interrupted job does not say what was released: $OUT"
[ "$(json_field "$OUT" 'j[0]["state"]')" = JOB_STATE_INTERRUPTED ] || fail "the killed job: $OUT"
# The CLI that watched the backup re-attached to the restarted daemon and reports the end.
RC=0
wait "$CLI" || RC=$?
[ "$RC" = 1 ] && grep -q "interrupted" "$WORK/killed.out" ||
  fail "the watching CLI exited $RC: $(cat "$WORK/killed.out")"
grep -q "released at offhostd's start" "$WORK/offhostd.log" || fail "not logged: $(cat "$WORK/offhostd.log")"
echo "ok: the job is INTERRUPTED: ${WARN:0:200}"
[ "$(qemu_leftovers vm1)" = "$NONE" ] || fail "QEMU still has leftovers: $(qemu_leftovers vm1)"
[ "$(qemu_bitmaps vm1)" = "$PARENT:True" ] || fail "the parent checkpoint: $(qemu_bitmaps vm1)"
qmp vm1 query-status | grep -q '"running": true' || fail "the VM does not run"
ls "$WORK/ds/tmp/views" | grep -q offhost-fleece && fail "scratch file left in $WORK/ds/tmp/views"
echo "ok: QEMU has no leftovers, the parent checkpoint records again, the VM runs"
[ "$(snapshot_count "$WORK/ds" vm1)" = 1 ] || fail "the killed backup left a snapshot"
run_expect 0 "$OFFHOST" verify --datastore "$WORK/ds"

# The next backup is an incremental on the parent and reads what the guest wrote.
guest_write vm1 "write -P 0x44 20M 64k"
run_expect 0 "$OFFHOST" backup "${D[@]}" --vm vm1 --json
[ "$(json_field "$OUT" 'j["disks"][0]["incremental"]')" = True ] || fail "not incremental: $OUT"
[ "$(json_field "$OUT" 'j["bytes_read"]')" -eq $(((128 + 64) << 10)) ] || fail "read: $OUT"
[ "$(qemu_leftovers vm1)" = "$NONE" ] || fail "leftovers after the next backup: $(qemu_leftovers vm1)"
guest_write vm1 "flush"
export_disk_copy vm1 "$WORK/now.raw"
run_expect 0 "$OFFHOST" restore --datastore "$WORK/ds" vm1@latest --to "$WORK/restored.raw"
expect_identical "$WORK/now.raw" "$WORK/restored.raw"
echo "PASS"
