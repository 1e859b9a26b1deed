#!/usr/bin/env bash
# offhostd killed with -9 while a backup of a libvirt domain (pull-mode backup) holds its
# view: libvirt keeps running our backup job (QEMU's NBD export and scratch overlay) and the
# new checkpoint. At the restart the daemon ends the job, removes the scratch file and
# deletes the checkpoint the chain does not need: the domain runs with no job and one
# checkpoint (the parent); the job shows INTERRUPTED with what was released; `offhost
# verify` is clean; the next backup through the daemon is an incremental.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/libvirt_lib.sh"
source "$(dirname "$0")/daemon/lib.sh"
need qemu-system-x86_64 qemu-img qemu-io
start_libvirtd
trap 'destroy_domains; cleanup' EXIT

DOM=offhost-k9-$$
DISK=$WORK/$DOM.qcow2
qemu-img create -q -f qcow2 "$DISK" 64M
qemu-io -f qcow2 -c "write -q -P 0x21 0 2M" "$DISK" >/dev/null
create_domain "$DOM" "$DISK"
new_datastore "$WORK/ds"
SOCK=$WORK/run/offhostd.sock
HOLD=$WORK/hold
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
EOF2
D=(--server "unix:$SOCK" --token-file "$WORK/operator.token")
checkpoints() { V checkpoint-list "$DOM" --name | sort | tr '\n' ' ' | sed 's/ $//'; }
job_running() { local info; info=$(V domjobinfo "$DOM"); grep -q "Operation: *Backup" <<<"$info"; }  # not a pipe: grep -q would end it early (SIGPIPE, pipefail)

touch "$HOLD"
start_daemon
run_expect 0 "$OFFHOST" backup "${D[@]}" --vm web01 --json
PARENT=$(json_field "$OUT" 'j["checkpoint"]')
[ "$(checkpoints)" = "$PARENT" ] || fail "after the first backup: $(checkpoints)"

rm -f "$HOLD" "$HOLD.ready"
domain_write "$DOM" "write -P 0x33 8M 128k"
"$OFFHOST" backup "${D[@]}" --vm web01 >"$WORK/killed.out" 2>&1 &
CLI=$!
for _ in $(seq 1 600); do [ -e "$HOLD.ready" ] && break; sleep 0.1; done
[ -e "$HOLD.ready" ] || fail "the backup never took its view: $(tail -5 "$WORK/offhostd.log")"
kill -9 "$(server_pid offhostd)"
job_running || fail "expected our backup job on the domain after kill -9: $(V domjobinfo "$DOM")"
[ "$(wc -w <<<"$(checkpoints)")" = 2 ] || fail "expected the parent and a new checkpoint: $(checkpoints)"
ls "$WORK/ds/tmp/views" | grep -q "offhost-scratch-$DOM-vda" ||
  fail "expected the scratch file in $WORK/ds/tmp/views: $(ls "$WORK/ds/tmp/views")"
echo "ok: after kill -9 the domain runs our backup job; checkpoints $(checkpoints)"

touch "$HOLD"
start_daemon
for _ in $(seq 1 300); do
  run_expect 0 "$OFFHOST" jobs "${D[@]}" --json
  WARN=$(json_field "$OUT" '" | ".join(w for x in j for w in x.get("warnings", []))')
  [[ $WARN == *"released at offhostd's start"* ]] && break
  sleep 0.1
done
[[ $WARN == *"released at offhostd's start"*"pull-mode backup job of domain $DOM"*"checkpoint offhost-"* ]] ||
  fail "the interrupted job does not say what was released: $OUT"
[ "$(json_field "$OUT" 'j[0]["state"]')" = JOB_STATE_INTERRUPTED ] || fail "the killed job: $OUT"
# The CLI that watched the backup re-attached to the restarted daemon and reports the end.
RC=0
wait "$CLI" || RC=$?
[ "$RC" = 1 ] && grep -q "interrupted" "$WORK/killed.out" ||
  fail "the watching CLI exited $RC: $(cat "$WORK/killed.out")"
echo "ok: the job is INTERRUPTED: ${WARN:0:240}"
! job_running || fail "the backup job still runs: $(V domjobinfo "$DOM")"
[ "$(checkpoints)" = "$PARENT" ] || fail "checkpoints after the restart: $(checkpoints)"
ls "$WORK/ds/tmp/views" | grep -q offhost-scratch && fail "scratch file left: $(ls "$WORK/ds/tmp/views")"
[ "$(V domstate "$DOM")" = running ] || fail "the domain does not run: $(V domstate "$DOM")"
[ "$(snapshot_count "$WORK/ds" web01)" = 1 ] || fail "the killed backup left a snapshot"
run_expect 0 "$OFFHOST" verify --datastore "$WORK/ds"

domain_write "$DOM" "write -P 0x44 20M 64k"
run_expect 0 "$OFFHOST" backup "${D[@]}" --vm web01 --json
[ "$(json_field "$OUT" 'j["disks"][0]["incremental"]')" = True ] || fail "not incremental: $OUT"
! job_running || fail "a job runs after the next backup"
echo "PASS"
