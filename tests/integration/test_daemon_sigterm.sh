#!/usr/bin/env bash
# offhostd stopped with SIGTERM while a backup runs: the daemon stops the job, releases its
# view (the qemu-nbd export the image driver started for the VM's disk is gone) and exits 0.
# After a restart the job shows INTERRUPTED, no snapshot was committed, `offhost verify` is
# clean, the disk image is unchanged, and the next backup of the VM succeeds. The backup is
# started by `offhost backup --server`, which follows it across the restart and exits 1
# saying how it ended.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/daemon/lib.sh"
need qemu-nbd qemu-img pgrep

gen_stubs
SOCK=$WORK/run/offhostd.sock
HOLD=$WORK/hold
mkdir -p "$WORK/images"
make_mixed_disk "$WORK/images/app01-vda.raw" 32
IMAGE_SUM=$(sha256sum <"$WORK/images/app01-vda.raw")
new_datastore "$WORK/ds"
write_daemon_config
cat >>"$WORK/offhostd.toml" <<EOF2

[[host]]
name = "images"
driver = "image"
datastore = "main"

[[vm]]
name = "app01"
host = "images"
settings = { disks = { vda = "$WORK/images/app01-vda.raw" } }
EOF2

exports_of_image() { pgrep -f "qemu-nbd.*$WORK/images/app01-vda.raw" || true; }

start_daemon
rm -f "$HOLD" "$HOLD.ready"
# The backup is started and watched by the CLI, which must ride out the restart.
"$OFFHOST" backup --vm app01 --server "unix:$SOCK" --token-file "$WORK/operator.token" \
  >"$WORK/cli.out" 2>&1 &
CLI_PID=$!
for _ in $(seq 1 300); do [ -e "$HOLD.ready" ] && break; sleep 0.1; done
JOB=$("$OFFHOST" jobs --json --server "unix:$SOCK" --token-file "$WORK/operator.token" |
  "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)[0]["name"])')
[ -e "$HOLD.ready" ] || fail "the backup never took its view: $(cat "$WORK/offhostd.log")"
[ -n "$(exports_of_image)" ] || fail "no qemu-nbd export of the image while the backup runs"
echo "ok: the backup holds its view, qemu-nbd exports the image"

# SIGTERM, then let the held backup see that it was stopped.
DAEMON_PID=$(server_pid offhostd)
kill -TERM "$DAEMON_PID"
touch "$HOLD"
rc=0
for _ in $(seq 1 300); do pid_alive "$DAEMON_PID" || break; sleep 0.1; done
! pid_alive "$DAEMON_PID" || fail "offhostd still runs 30 s after SIGTERM"
wait "$DAEMON_PID" 2>/dev/null || rc=$?
[ "$rc" -eq 0 ] || fail "offhostd exited $rc after SIGTERM: $(tail -5 "$WORK/offhostd.log")"
[ -z "$(exports_of_image)" ] || fail "qemu-nbd still exports the image after the daemon stopped"
echo "ok: offhostd exited 0 and released the view"

start_daemon
LINE=$(as operator get "$JOB")
[[ $LINE == *"state=JOB_STATE_INTERRUPTED "* || $LINE == *"state=JOB_STATE_CANCELLED "* ]] ||
  fail "after the restart the stopped job shows: $LINE"
echo "ok: $LINE"
# The watching CLI re-attached to the restarted daemon and names how the job ended (a
# stopping daemon cancels the calls it still has: that is no answer about the job).
rc=0
wait "$CLI_PID" || rc=$?
[ "$rc" -eq 1 ] || fail "offhost backup exited $rc, want 1: $(cat "$WORK/cli.out")"
grep -q "$JOB \(interrupted\|cancelled\): " "$WORK/cli.out" ||
  fail "offhost backup did not say how $JOB ended: $(cat "$WORK/cli.out")"
echo "ok: the watching CLI exited 1: $(tail -1 "$WORK/cli.out")"
[ "$(snapshot_count "$WORK/ds" app01)" = 0 ] || fail "the stopped backup left a snapshot"
run_expect 0 "$OFFHOST" verify --datastore "$WORK/ds"
[ "$(sha256sum <"$WORK/images/app01-vda.raw")" = "$IMAGE_SUM" ] || fail "the disk image changed"

LINE=$(as operator start hosts/images/vms/app01 5d0c1e9a-0000-4000-8000-000000000002)
[[ $LINE == "OK job="* ]] || fail "StartBackup after the restart: $LINE"
await_state "$(field job)" JOB_STATE_SUCCEEDED
run_expect 0 "$OFFHOST" restore --datastore "$WORK/ds" app01@latest --to "$WORK/restored.raw"
expect_identical "$WORK/images/app01-vda.raw" "$WORK/restored.raw"
[ -z "$(exports_of_image)" ] || fail "qemu-nbd still exports the image after the backup"
echo "PASS"
