#!/usr/bin/env bash
# offhost prune on real backups: --dry-run changes nothing, the policy keeps exactly the
# snapshots it names (per VM), kept snapshots still restore byte-identical, removed ones are
# gone, verify stays clean, and a policy that keeps nothing is refused; a snapshot an export
# is reading is kept (and its chunks with it) until the export ends.
source "$(dirname "$0")/lib.sh"
need qemu-nbd qemu-img nbdkit python3

DS=$WORK/ds
new_datastore "$DS"
make_mixed_disk "$WORK/web.raw" 32
make_mixed_disk "$WORK/db.raw" 16

# Four backups of web01, 1 MiB changed before each of the later three; one of db01.
IDS=()
for i in 1 2 3 4; do
  if [ "$i" -gt 1 ]; then
    head -c 1M /dev/urandom | dd of="$WORK/web.raw" bs=1M seek=$((4 * i)) conv=notrunc status=none
  fi
  URI=$(serve_nbd web "$WORK/web.raw")
  J=$(backup_json "$DS" web01 "vda=$URI")
  stop_server web
  IDS+=("$(json_field "$J" 'j["snapshot"]')")
  cp --sparse=always "$WORK/web.raw" "$WORK/web-$i.raw"
done
URI=$(serve_nbd db "$WORK/db.raw")
backup_json "$DS" db01 "vda=$URI" >/dev/null
stop_server db
[ "$(snapshot_count "$DS" web01)" -eq 4 ] || fail "expected 4 snapshots of web01"

# --- a policy that keeps nothing, and an unknown VM --------------------------------------------
run_expect 2 "$OFFHOST" prune --datastore "$DS"
expect_output "must keep something"
expect_output "--keep-last"
run_expect 1 "$OFFHOST" prune --datastore "$DS" --vm nosuchvm --keep-last 1
expect_output "VM 'nosuchvm' has no snapshots"

# --- dry run: says what it would do, does nothing ----------------------------------------------
run_expect 0 "$OFFHOST" prune --datastore "$DS" --vm web01 --keep-last 2 --dry-run
expect_output "web01@${IDS[0]}"
expect_output "would remove"
expect_output "web01: 2 kept, 2 to remove (dry run: nothing removed)"
[ "$(snapshot_count "$DS" web01)" -eq 4 ] || fail "--dry-run removed snapshots"
run_expect 0 "$OFFHOST" prune --datastore "$DS" --vm web01 --keep-last 2 --dry-run --json
[ "$(json_field "$OUT" '[s["snapshot"] for s in j["snapshots"] if s["keep"]]')" = \
  "['${IDS[3]}', '${IDS[2]}']" ] || fail "dry run keeps the wrong snapshots: $OUT"
[ "$(json_field "$OUT" '[s["reasons"] for s in j["snapshots"] if s["keep"]]')" = \
  "[['base of the next incremental', 'last 1'], ['last 2']]" ] || fail "reasons: $OUT"

# --- the real prune, every VM at once ------------------------------------------------------------
run_expect 0 "$OFFHOST" prune --datastore "$DS" --keep-last 2
expect_output "web01: 2 kept, 2 removed"
expect_output "db01: 1 kept, 0 removed"
L=$("$OFFHOST" snapshots --datastore "$DS" --vm web01 --json)
[ "$(json_field "$L" '",".join(s["snapshot"] for s in j)')" = "${IDS[2]},${IDS[3]}" ] ||
  fail "after prune web01 holds: $L"
[ "$(snapshot_count "$DS" db01)" -eq 1 ] || fail "db01 lost its only snapshot"

# kept snapshots restore byte-identical; removed ones are gone with a clear error
run_expect 0 "$OFFHOST" restore --datastore "$DS" "web01@${IDS[2]}" --to "$WORK/r3.raw"
expect_identical "$WORK/web-3.raw" "$WORK/r3.raw"
run_expect 0 "$OFFHOST" restore --datastore "$DS" "web01@latest" --to "$WORK/r4.raw"
expect_identical "$WORK/web-4.raw" "$WORK/r4.raw"
run_expect 1 "$OFFHOST" restore --datastore "$DS" "web01@${IDS[0]}" --to "$WORK/r1.raw"
expect_output "not found"
[ ! -e "$WORK/r1.raw" ] || fail "a restore of a pruned snapshot created its target"
run_expect 0 "$OFFHOST" verify --datastore "$DS"

# --- a snapshot being read is kept: while an export serves it, prune keeps it and says why,
# GC leaves its chunks, and the export goes on reading it; once the export ends, prune removes it
SOCK=$WORK/export.sock
"$OFFHOST" export --datastore "$DS" "web01@${IDS[2]}" --disk vda --socket "$SOCK" \
  >"$WORK/export.out" 2>&1 &
EXPORT_PID=$!
PIDS+=("$EXPORT_PID")
for _ in $(seq 1 300); do
  grep -q '^exporting ' "$WORK/export.out" && break
  pid_alive "$EXPORT_PID" || fail "offhost export ended: $(cat "$WORK/export.out")"
  sleep 0.1
done
grep -q '^exporting ' "$WORK/export.out" || fail "offhost export did not serve: $(cat "$WORK/export.out")"
run_expect 0 "$OFFHOST" prune --datastore "$DS" --vm web01 --keep-last 1
expect_output "in use by a restore, mount or export"
expect_output "web01: 2 kept, 0 removed"
[ "$(snapshot_count "$DS" web01)" -eq 2 ] || fail "prune removed a snapshot being exported"
run_expect 0 "$OFFHOST" gc --datastore "$DS" --min-age 0
OUT=$(qemu-img compare -f raw -F raw "$WORK/web-3.raw" "nbd+unix:///?socket=$SOCK" 2>&1) ||
  fail "the export no longer reads its snapshot after prune and gc: $OUT"
kill -INT "$EXPORT_PID"
wait "$EXPORT_PID" 2>/dev/null || true
run_expect 0 "$OFFHOST" prune --datastore "$DS" --vm web01 --keep-last 1
expect_output "web01: 1 kept, 1 removed"
[ "$(snapshot_count "$DS" web01)" -eq 1 ] || fail "prune kept the snapshot after its export ended"
run_expect 0 "$OFFHOST" verify --datastore "$DS"

# the next backup of the pruned VM works and is complete on its own
URI=$(serve_nbd web "$WORK/web.raw")
backup_json "$DS" web01 "vda=$URI" >/dev/null
run_expect 0 "$OFFHOST" restore --datastore "$DS" "web01@latest" --to "$WORK/r5.raw"
expect_identical "$WORK/web.raw" "$WORK/r5.raw"
echo "PASS"
