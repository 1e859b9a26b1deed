#!/usr/bin/env bash
# offhostd backups as jobs: a disk image exported by qemu-nbd on a unix socket is VM web01 of
# an nbd host in the daemon's inventory. A Python grpcio client (daemon/backup_client.py)
# starts a backup with an operator token and watches it to SUCCEEDED, dropping the stream
# after its first events and re-attaching with after_sequence (no event missed); the snapshot
# is listed and `offhost restore` gives back the source bytes. A read-only token is refused;
# a retry with the same request_id returns the same job. A backup held at its view
# (OFFHOST_TEST_HOLD_VIEW) and cancelled ends CANCELLED with no snapshot. offhostd killed
# (-9) while a backup is held shows the job INTERRUPTED after a restart, `offhost verify` is
# clean and the NBD export is untouched.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/daemon/lib.sh"
need qemu-nbd

gen_stubs
SOCK=$WORK/run/offhostd.sock
HOLD=$WORK/hold
make_mixed_disk "$WORK/web01.raw" 32
SOURCE_SUM=$(sha256sum <"$WORK/web01.raw")
URI=$(serve_nbd web01 "$WORK/web01.raw")
new_datastore "$WORK/ds"
write_daemon_config operator:operator:backup-app reader:read-only:auditor
cat >>"$WORK/offhostd.toml" <<EOF2

[[host]]
name = "kvm1"
driver = "nbd"
datastore = "main"

[[vm]]
name = "web01"
host = "kvm1"
settings = { disks = { vda = "$URI" } }
EOF2

# The hook holds every backup at its view until $HOLD exists: made now, backups run through.
touch "$HOLD"
# expect_call PATTERN TOKEN ARGS...: like expect, with backup_client.py; the line is in $LINE.
expect_call() {
  local pattern=$1
  shift
  LINE=$(as "$@")
  [[ $LINE == $pattern ]] || fail "backup_client $*: got '$LINE', want '$pattern'"
  echo "ok: ${LINE:0:160}"
}
# held_backup REQUEST_ID: starts a backup that the hook holds at its view; prints its job.
held_backup() {
  rm -f "$HOLD" "$HOLD.ready"
  LINE=$(as operator start hosts/kvm1/vms/web01 "$1")
  [[ $LINE == "OK job="* ]] || fail "StartBackup: $LINE"
  for _ in $(seq 1 300); do [ -e "$HOLD.ready" ] && break; sleep 0.1; done
  [ -e "$HOLD.ready" ] || fail "the backup never took its view: $(cat "$WORK/offhostd.log")"
  field job
}

start_daemon

# A backup, watched with a dropped and re-attached stream, then restored.
expect_call "OK job=jobs/* state=JOB_STATE_* snapshot=- error=0:-" \
  operator start hosts/-/vms/web01 9b1f0c2e-0000-4000-8000-000000000001
JOB=$(field job)
expect_call "OK events=* reattached_after=2 states=*JOB_STATE_RUNNING*,JOB_STATE_SUCCEEDED" \
  reader watch-reattach "$JOB"
expect_call "OK job=$JOB state=JOB_STATE_SUCCEEDED snapshot=datastores/main/vms/web01/snapshots/* *" \
  reader get "$JOB"
SNAPSHOT=$(field snapshot)
expect_call "OK snapshots=$SNAPSHOT" reader snapshots datastores/main/vms/web01
run_expect 0 "$OFFHOST" restore --datastore "$WORK/ds" "web01@${SNAPSHOT##*/}" \
  --to "$WORK/restored.raw"
expect_identical "$WORK/web01.raw" "$WORK/restored.raw"
echo "ok: the restore of $SNAPSHOT equals the source"

# The same request_id returns the same job, and refuses another request; a read-only token
# may not start backups.
expect_call "OK job=$JOB state=JOB_STATE_SUCCEEDED *" \
  operator start hosts/-/vms/web01 9b1f0c2e-0000-4000-8000-000000000001
expect_call "ALREADY_EXISTS reason=REQUEST_ID_REUSED *" \
  operator start hosts/kvm1/vms/web01 9b1f0c2e-0000-4000-8000-000000000001
expect_call "PERMISSION_DENIED reason=ROLE_TOO_LOW *" \
  reader start hosts/kvm1/vms/web01 9b1f0c2e-0000-4000-8000-000000000002
expect_call "NOT_FOUND reason=VM_NOT_FOUND *" \
  operator start hosts/kvm1/vms/db01 9b1f0c2e-0000-4000-8000-000000000003

# Cancel a backup held at its view: CANCELLED, no new snapshot, the view released.
JOB=$(held_backup 9b1f0c2e-0000-4000-8000-000000000004)
expect_call "PERMISSION_DENIED reason=ROLE_TOO_LOW *" reader cancel "$JOB"
expect_call "OK job=$JOB state=JOB_STATE_CANCELLING *" operator cancel "$JOB"
touch "$HOLD"
await_state "$JOB" JOB_STATE_CANCELLED
[[ $LINE == *"snapshot=- error=1:"* ]] || fail "cancelled job: $LINE"
echo "ok: $LINE"
[ "$(snapshot_count "$WORK/ds" web01)" = 1 ] || fail "a cancelled backup left a snapshot"

# offhostd killed while a backup runs: INTERRUPTED after the restart, the datastore clean.
JOB=$(held_backup 9b1f0c2e-0000-4000-8000-000000000005)
kill -9 "$(server_pid offhostd)"
wait "$(server_pid offhostd)" 2>/dev/null || true
touch "$HOLD"
start_daemon
expect_call "OK job=$JOB state=JOB_STATE_INTERRUPTED snapshot=- error=14:offhostd stopped while it ran" \
  reader get "$JOB"
[ "$(snapshot_count "$WORK/ds" web01)" = 1 ] || fail "the killed backup left a snapshot"
run_expect 0 "$OFFHOST" verify --datastore "$WORK/ds"
echo "ok: offhost verify is clean after the kill"
[ "$(sha256sum <"$WORK/web01.raw")" = "$SOURCE_SUM" ] || fail "the NBD export changed"
echo "ok: the export is untouched"
# The next backup of the VM cleans the killed one's leftovers and succeeds.
expect_call "OK job=jobs/* *" operator start hosts/kvm1/vms/web01 9b1f0c2e-0000-4000-8000-000000000006
await_state "$(field job)" JOB_STATE_SUCCEEDED
echo "PASS"
