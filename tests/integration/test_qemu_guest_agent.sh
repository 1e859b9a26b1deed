#!/usr/bin/env bash
# Quiescing through the guest agent (qemu driver): an agent that answers makes the backup
# application-consistent and the guest is thawed right after the view is taken; an agent that
# hangs downgrades the backup to crash-consistent with the reason, within the freeze timeout.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/qemu_lib.sh"
need qemu-system-x86_64 qemu-img python3

qemu-img create -q -f qcow2 "$WORK/vm1.qcow2" 64M
start_qemu vm1 "$WORK/vm1.qcow2"
"$OFFHOST" datastore init "$WORK/ds" >/dev/null
AGENT="$(dirname "$0")/fake_qga.py"

python3 "$AGENT" "$WORK/qga-ok.sock" "$WORK/qga-ok.log" ok &
PIDS+=($!)
wait_for_socket "$WORK/qga-ok.sock"
J=$("$OFFHOST" backup --datastore "$WORK/ds" --driver qemu --qmp "$WORK/vm1.qmp" \
  --qga "$WORK/qga-ok.sock" --json) || fail "backup with a good agent failed: $J"
[ "$(json_field "$J" 'j["consistency"]')" = application ] || fail "expected application-consistent: $J"
[ "$(tr '\n' ' ' <"$WORK/qga-ok.log")" = "guest-sync guest-fsfreeze-freeze guest-fsfreeze-thaw " ] ||
  fail "agent saw: $(cat "$WORK/qga-ok.log")"

python3 "$AGENT" "$WORK/qga-hang.sock" "$WORK/qga-hang.log" hang &
PIDS+=($!)
wait_for_socket "$WORK/qga-hang.sock"
START=$(date +%s)
J=$("$OFFHOST" backup --datastore "$WORK/ds" --driver qemu --qmp "$WORK/vm1.qmp" \
  --qga "$WORK/qga-hang.sock" --freeze-timeout 2 --json) || fail "backup with a hung agent failed: $J"
[ $(($(date +%s) - START)) -le 20 ] || fail "a hung agent must not stall the backup"
[ "$(json_field "$J" 'j["consistency"]')" = crash ] || fail "hung agent: expected crash-consistent: $J"
json_field "$J" 'j["consistency_reason"]' | grep -q "did not answer" || fail "reason: $J"

J=$("$OFFHOST" backup --datastore "$WORK/ds" --driver qemu --qmp "$WORK/vm1.qmp" \
  --qga "$WORK/no-agent.sock" --json) || fail "backup without an agent failed: $J"
[ "$(json_field "$J" 'j["consistency"]')" = crash ] || fail "no agent: $J"
[ "$(qemu_leftovers vm1)" = "jobs=[] exports=[] nodes=[]" ] || fail "leftovers: $(qemu_leftovers vm1)"
echo PASS
