#!/usr/bin/env bash
# kill -9 of a backup at the two edges of its life, placed exactly with strace:
#  (a) just after BeginSnapshot created the staging directory DIR/tmp/VM@ID, before the
#      "running" marker is in the index;
#  (b) just after Commit's synced index write (the snapshot exists), before the staging
#      directory is removed.
# Either way the next backup must leave DIR/tmp empty (staging is cleaned up "later"), the
# datastore must verify clean, and what was committed must restore.
source "$(dirname "$0")/lib.sh"
need strace qemu-nbd python3

DS=$WORK/ds
new_datastore "$DS"
make_mixed_disk "$WORK/disk.raw" 32
URI=$(serve_nbd src "$WORK/disk.raw")
problems=()

# backup_killed_when OUTPUT STRACE-ARGS...: runs a traced backup of VM "victim"; returns when the
# backup process is gone.
traced_backup() {
  local log=$1
  shift
  strace -f -qq -o "$log" "$@" "$OFFHOST" backup --datastore "$DS" --vm victim --disk "vda=$URI" \
    >"$WORK/victim.out" 2>&1 &
  TRACER=$!
}

# --- (b) killed on entering the first unlinkat: remove_all of the staging directory, which runs
#     right after the commit (RocksDB itself deletes with unlink, not unlinkat) -------------------
traced_backup "$WORK/strace-b.log" -e trace=unlinkat -e inject=unlinkat:signal=KILL
wait "$TRACER" || true
grep -q 'vda.manifest' "$WORK/strace-b.log" ||
  fail "(b) the first unlinkat was not the staging cleanup: $(cat "$WORK/strace-b.log")"
[ "$(snapshot_count "$DS" victim)" -eq 1 ] || fail "(b) the snapshot committed before the kill is missing"
echo "(b) staging after the kill: $(staging_entries "$DS" | tr '\n' ' ')"
run_expect 0 "$OFFHOST" restore --datastore "$DS" victim@latest --to "$WORK/b.raw"
expect_identical "$WORK/disk.raw" "$WORK/b.raw"
run_expect 0 "$OFFHOST" verify --datastore "$DS"
run_expect 0 "$OFFHOST" backup --datastore "$DS" --vm victim --disk "vda=$URI"
[ -z "$(staging_entries "$DS")" ] ||
  problems+=("(b) kill after commit: staging '$(staging_entries "$DS" | tr '\n' ' ')' is still in $DS/tmp after the next backup")

# --- (a) every mkdir is held 400 ms on its way out; as soon as the staging directory exists the
#     backup (still inside that mkdir) is killed ------------------------------------------------
rm -rf "${DS:?}/tmp/"*  # start (a) from a clean staging area whatever (b) left
traced_backup "$WORK/strace-a.log" -e trace=mkdir -e inject=mkdir:delay_exit=400000
for i in $(seq 1 3000); do
  [ -n "$(staging_entries "$DS")" ] && break
  pid_alive "$TRACER" || fail "(a) the traced backup ended before creating its staging: $(cat "$WORK/victim.out")"
  sleep 0.01
done
[ -n "$(staging_entries "$DS")" ] || fail "(a) no staging directory appeared"
victim=$(pgrep -P "$TRACER" -x offhost || pgrep -P "$TRACER")
kill -9 "$victim"
wait "$TRACER" || true
echo "(a) staging after the kill: $(staging_entries "$DS" | tr '\n' ' ')"
[ "$(snapshot_count "$DS" victim)" -eq 2 ] || fail "(a) a backup killed at its start changed the snapshots"
run_expect 0 "$OFFHOST" verify --datastore "$DS"
# (the orphaned staging directory has the id a new backup of the same VM picks within the same
# second; that backup must not trip over it)
rc=0
OUT=$("$OFFHOST" backup --datastore "$DS" --vm victim --disk "vda=$URI" 2>&1) || rc=$?
if [ "$rc" -ne 0 ]; then
  problems+=("(a) the backup right after the kill failed (exit $rc): $OUT")
  sleep 1.1
  run_expect 0 "$OFFHOST" backup --datastore "$DS" --vm victim --disk "vda=$URI"
fi
run_expect 0 "$OFFHOST" restore --datastore "$DS" victim@latest --to "$WORK/a.raw"
expect_identical "$WORK/disk.raw" "$WORK/a.raw"
[ -z "$(staging_entries "$DS")" ] ||
  problems+=("(a) kill after the staging mkdir: staging '$(staging_entries "$DS" | tr '\n' ' ')' is still in $DS/tmp after the next backup")

if [ "${#problems[@]}" -gt 0 ]; then
  printf '%s\n' "${problems[@]}" >&2
  fail "staging directories of killed backups are never cleaned up (see above)"
fi
echo PASS
