#!/usr/bin/env bash
# offhostd's scheduler (docs/scheduler.md): six image-driver VMs of one host with the default
# limit of two backups per host, fulls every 7 days staggered over the week, a backup window
# on each and a retention policy (keep_last = 2) on vm1; a VM of a second host whose disk is missing,
# with 2 retries and a 1 s backoff. `offhost schedule run-now` fires the schedules now.
# Asserted through `offhost jobs --json` and `offhost schedule --json`: while the first two
# backups are held at their view the other four are "waiting for a host slot"; from the
# recorded timelines never more than two held a slot at once; each VM has its own full day
# and only today's VM asked for a full; the backups held past their window's end got the
# warning (job, log); a VM limited to 4 MiB/s took as long as its bytes read say; the broken VM failed three times 1 s then 2 s apart and ended FAILED with the reason;
# scheduled prune left vm1 exactly the two newest snapshots.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/daemon/lib.sh"
need qemu-nbd qemu-img

OPERATOR_HASH=$(token operator)
SOCK=$WORK/run/offhostd.sock
HOLD=$WORK/hold
mkdir -p "$WORK/images"
for i in 1 2 3 4 5 6; do make_mixed_disk "$WORK/images/vm$i.raw" 24; done
new_datastore "$WORK/ds"
NOW=$(date -u +%s)
# A schedule that cannot fire by itself during the test (12 hours away), and the window of
# vm1..vm6:
# from an hour ago to 6 seconds after the configuration is written.
AT=$(date -u -d "@$((NOW + 43200))" +%H:%M)
WINDOW="$(date -u -d "@$((NOW - 3600))" +%H:%M:%S)-$(date -u -d "@$((NOW + 6))" +%H:%M:%S)"
{
  cat <<EOF2
[server]
unix_socket = "$SOCK"
audit_log = "$WORK/log/audit.log"
state_dir = "$WORK/state"

[scheduler]
max_per_host = 2

[[token]]
name = "admin"
sha256 = "$OPERATOR_HASH"
role = "operator"

[[datastore]]
name = "main"
path = "$WORK/ds"

[[host]]
name = "kvm1"
driver = "image"

[[host]]
name = "kvm2"
driver = "image"

[[vm]]
name = "broken"
host = "kvm2"
schedule = "daily $AT"
retries = 2
retry_backoff = "1s"
settings = { disks = { vda = "$WORK/images/missing.raw" } }

[[vm]]
name = "slow"
host = "kvm2"
schedule = "daily $AT"
bandwidth = "4M"
settings = { disks = { vda = "$WORK/images/vm6.raw" } }
EOF2
  for i in 1 2 3 4 5 6; do
    printf '\n[[vm]]\nname = "vm%s"\nhost = "kvm1"\nschedule = "daily %s"\nfull_every = "7d"\n' \
      "$i" "$AT"
    printf 'settings = { disks = { vda = "%s" } }\nwindow = "%s"\n' "$WORK/images/vm$i.raw" "$WINDOW"
    if [ "$i" = 1 ]; then printf 'retention = { keep_last = 2 }\n'; fi
  done
} >"$WORK/offhostd.toml"
run_expect 0 "$OFFHOSTD" --check-config "$WORK/offhostd.toml"

D=(--server "unix:$SOCK" --token-file "$WORK/operator.token")
jobs_json() { "$OFFHOST" jobs "${D[@]}" --json >"$WORK/jobs.json" || fail "offhost jobs failed"; }
# check PYTHON-CODE: runs it with `jobs` (the offhost jobs --json list), `sched` (offhost
# schedule --json) loaded; it prints "ok: ..." or exits non-zero with a message.
check() {
  jobs_json
  "$OFFHOST" schedule "${D[@]}" --json >"$WORK/sched.json" || fail "offhost schedule failed"
  python3 - "$WORK/jobs.json" "$WORK/sched.json" <<EOF3 || fail "check failed (jobs in $WORK/jobs.json)"
import json, sys, datetime
jobs = json.load(open(sys.argv[1])); sched = json.load(open(sys.argv[2]))
def ts(s): return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
def vm(j): return j["backup"]["vm"].rsplit("/", 1)[1]
$1
EOF3
}
# await PYTHON-CONDITION WHAT: polls `offhost jobs --json` until the condition holds (60 s);
# an error in the condition fails at once.
await() {
  local rc
  for _ in $(seq 1 300); do
    jobs_json
    rc=0
    python3 - "$WORK/jobs.json" <<EOF3 || rc=$?
import json, sys
jobs = json.load(open(sys.argv[1]))
def vm(j): return j["backup"]["vm"].rsplit("/", 1)[1]
sys.exit(0 if ($1) else 3)
EOF3
    [ "$rc" = 0 ] && return 0
    [ "$rc" = 3 ] || fail "await $2: the condition failed"
    sleep 0.2
  done
  cp "$WORK/jobs.json" "${TMPDIR:-/tmp}/scheduler-jobs.json" 2>/dev/null || true
  tail -20 "$WORK/offhostd.log" >&2
  fail "timed out waiting for: $2"
}

start_daemon  # $HOLD is missing: every backup waits at its view until it exists

# Staggered fulls: each VM of kvm1 has its own day of the 7-day period.
check '
days = {vm: s["next_full_day"] for s in sched for vm in [s["vm"].rsplit("/", 1)[1]] if vm.startswith("vm")}
assert len(days) == 6 and len(set(days.values())) == 6, days
print("ok: fulls staggered, one VM per day:", sorted(days.values()))'

run_expect 0 "$OFFHOST" schedule run-now "${D[@]}" vm1 vm2 vm3 vm4 vm5 vm6
[[ $OUT == *"jobs/"*vm1*"jobs/"*vm6* ]] || fail "run-now: $OUT"
await 'sum(j["state"] == "JOB_STATE_RUNNING" for j in jobs) == 2 and
       sum(j.get("progress", {}).get("phase") == "JOB_PHASE_WAITING_FOR_SLOT" for j in jobs) == 4' \
  "2 backups running and 4 waiting for a host slot"
run_expect 0 "$OFFHOST" jobs "${D[@]}"
[ "$(grep -c 'waiting for a host slot' <<<"$OUT")" = 4 ] || fail "offhost jobs: $OUT"
echo "ok: offhost jobs shows 4 backups waiting for a host slot"

# The two that got a slot (whichever they are), held at their views, run past the end of
# their window: a warning, not a kill.
await 'sum(j["state"] == "JOB_STATE_RUNNING" and
           any("past its backup window" in w for w in j.get("warnings", [])) for j in jobs) == 2' \
  "the window warnings of the 2 running backups"
grep -q "past its backup window" "$WORK/offhostd.log" || fail "the warning is not in the log"
echo "ok: the 2 running backups past their window got the warning (job and log)"

touch "$HOLD"
await 'sum(j["state"] == "JOB_STATE_SUCCEEDED" for j in jobs) == 6' "6 backups succeeded"
check '
spans = []
for j in jobs:
    start = None
    for e in j["timeline"]:
        if e["what"] == "slot": start = ts(e["time"])
        if e["what"] == "released": spans.append((start, ts(e["time"]), vm(j)))
assert len(spans) == 6, spans
points = sorted([(s, 1) for s, _, _ in spans] + [(e, -1) for _, e, _ in spans], key=lambda p: (p[0], p[1]))
running = peak = 0
for _, d in points:
    running += d; peak = max(peak, running)
assert peak == 2, "peak %d" % peak
assert all(j["state"] == "JOB_STATE_SUCCEEDED" for j in jobs)
print("ok: at most 2 backups of kvm1 held a slot at once (peak %d, from the timelines)" % peak)
today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
due = sorted(s["vm"].rsplit("/", 1)[1] for s in sched if s.get("next_full_day", "").startswith(today))
asked = sorted(vm(j) for j in jobs if j["backup"].get("full"))
assert asked == due, (asked, due)
print("ok: only the VM whose full day is today asked for a full:", asked)'

# A VM whose disk is missing: retried after 1 s, then 2 s, then FAILED with the reason.
run_expect 0 "$OFFHOST" schedule run-now "${D[@]}" broken
await 'any(vm(j) == "broken" and j["state"] == "JOB_STATE_FAILED" for j in jobs)' "broken FAILED"
check '
j = next(j for j in jobs if vm(j) == "broken")
slots = [ts(e["time"]) for e in j["timeline"] if e["what"] == "slot"]
fails = [e for e in j["timeline"] if e["what"] == "attempt_failed"]
assert len(slots) == 3 and len(fails) == 2, j["timeline"]
assert slots[1] - slots[0] >= 1.0 and slots[2] - slots[1] >= 2.0, slots
assert "next attempt in 1s" in fails[0]["detail"] and "next attempt in 2s" in fails[1]["detail"], fails
msg = j["error"]["message"]
assert "missing.raw" in msg and "attempt 3 of 3, the last" in msg, msg
assert j["timeline"][-1]["what"] == "failed" and j["timeline"][-1]["detail"] == msg
print("ok: broken retried after %.1f s and %.1f s, then FAILED: %s" % (slots[1] - slots[0], slots[2] - slots[1], msg))'

BROKEN=$(python3 -c "import json; print(next(j['name'] for j in json.load(open('$WORK/jobs.json')) if j['backup']['vm'].endswith('/broken')))")
run_expect 0 "$OFFHOST" jobs show "${D[@]}" "$BROKEN"
[ "$(grep -c ' attempt_failed ' <<<"$OUT")" = 2 ] && [[ $OUT == *" failed "*"attempt 3 of 3, the last"* ]] ||
  fail "offhost jobs show: $OUT"
echo "ok: offhost jobs show lists the attempts and the reason"

# A bandwidth limit of 4 MiB/s on the bytes read from the source (one second of burst).
run_expect 0 "$OFFHOST" schedule run-now "${D[@]}" slow
await 'any(vm(j) == "slow" and j["state"] == "JOB_STATE_SUCCEEDED" for j in jobs)' "slow SUCCEEDED"
check '
def span(j):
    t = {e["what"]: ts(e["time"]) for e in j["timeline"]}
    return t["released"] - t["slot"]
slow = next(j for j in jobs if vm(j) == "slow")
read = int(slow["progress"]["bytes_read"])
assert read >= 8 << 20, read
want = (read - (1 << 20)) / (4 << 20) - 1.0  # reads of <= 1 MiB, each when allowed; 1 s burst
assert span(slow) >= want - 0.1, (span(slow), want)
print("ok: slow read %.1f MiB in %.1f s at 4 MiB/s (at least %.1f s)" % (read / 2**20, span(slow), want))'

# Scheduled prune: vm1 keeps its two newest snapshots (keep_last = 2) after a third backup.
for _ in 1 2; do
  run_expect 0 "$OFFHOST" schedule run-now "${D[@]}" vm1
  JOB=$(awk '{print $1}' <<<"$OUT")
  await "any(j['name'] == '$JOB' and j['state'] == 'JOB_STATE_SUCCEEDED' for j in jobs)" "$JOB"
done
[ "$(snapshot_count "$WORK/ds" vm1)" = 2 ] || fail "vm1 has $(snapshot_count "$WORK/ds" vm1) snapshots"
check "
j = next(j for j in jobs if j['name'] == '$JOB')
p = [e['detail'] for e in j['timeline'] if e['what'] == 'pruned']
assert p and p[0].startswith('kept 2, removed 1'), j['timeline']
print('ok: the scheduled prune of vm1:', p[0])"
run_expect 0 "$OFFHOST" schedule prune "${D[@]}" vm1 --dry-run
[[ $OUT == *"vm1: 2 kept, 0 to remove"* ]] || fail "prune --dry-run: $OUT"
run_expect 0 "$OFFHOST" verify --datastore "$WORK/ds"
echo "PASS"
