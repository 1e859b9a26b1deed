#!/usr/bin/env bash
# Garbage collection through offhostd: after a prune, DatastoreStatus reports the space GC
# would free (gc_reclaimable_bytes), DatastoreService.StartGc runs a GC job visible in the
# Jobs service with its GcResult, the bytes it removed are those reported, and afterwards
# nothing is left to free and verify is clean. A read-only token may not start one.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/daemon/lib.sh"
need qemu-nbd

gen_stubs
OPERATOR_HASH=$(token operator)
READER_HASH=$(token reader)
SOCK=$WORK/run/offhostd.sock
HOLD=$WORK/hold
touch "$HOLD"
DS=$WORK/ds
new_datastore "$DS" --chunk-size 256K
cat >"$WORK/offhostd.toml" <<EOF2
[server]
unix_socket = "$SOCK"
audit_log = "$WORK/log/audit.log"
state_dir = "$WORK/state"

[[token]]
name = "admin-app"
sha256 = "$OPERATOR_HASH"
role = "operator"

[[token]]
name = "auditor"
sha256 = "$READER_HASH"
role = "read-only"

[[datastore]]
name = "main"
path = "$DS"
EOF2
gc() { "$PYTHON" "$DAEMON_DIR/gc_client.py" "$WORK/gen" "$SOCK" "$WORK/$1.token" "${@:2}"; }
val() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" <<<"$LINE"; }

# two backups of one VM with different data; the prune leaves the first one's 16 chunks unused,
# and they are made an hour old (GC's default minimum age is 5 minutes)
for i in 1 2; do
  head -c 4M /dev/urandom >"$WORK/vm.raw"
  URI=$(serve_nbd vm "$WORK/vm.raw")
  backup_json "$DS" vm01 "vda=$URI" >/dev/null
  stop_server vm
done
run_expect 0 "$OFFHOST" prune --datastore "$DS" --keep-last 1
find "$DS/chunks" -type f -exec touch -d '1 hour ago' {} +

start_daemon
LINE=$(gc operator status main)
[[ $LINE == OK* ]] || fail "status: $LINE"
RECLAIM=$(val gc_reclaimable)
[ "$RECLAIM" -gt 0 ] && [ "$RECLAIM" -eq "$(val unreferenced)" ] || fail "status: $LINE"
echo "ok: status says GC would free $RECLAIM bytes"

# the CLI through the daemon: a dry run says the same and removes nothing
CHUNKS_BEFORE=$(find "$DS/chunks" -type f | wc -l)
run_expect 0 "$OFFHOST" gc --server "unix:$SOCK" --token-file "$WORK/operator.token" --dry-run --json
[ "$(json_field "$OUT" 'j["removed_chunks"]')" -eq 16 ] &&
  [ "$(json_field "$OUT" 'j["removed_bytes"]')" -eq "$RECLAIM" ] &&
  [ "$(json_field "$OUT" 'j["dry_run"]')" = True ] || fail "offhost gc --server --dry-run: $OUT"
[ "$(find "$DS/chunks" -type f | wc -l)" -eq "$CHUNKS_BEFORE" ] || fail "a dry run removed chunk files"
run_expect 4 "$OFFHOST" gc --server "unix:$SOCK" --token-file "$WORK/reader.token"
expect_output "this call needs operator or above"
echo "ok: offhost gc --server --dry-run would free the same $RECLAIM bytes; read-only refused"

LINE=$(gc reader start-gc main 0)
[[ $LINE == PERMISSION_DENIED* ]] || fail "a read-only token started a GC: $LINE"
LINE=$(gc operator start-gc main 0)
[[ $LINE == "OK job=jobs/"*" type=JOB_TYPE_GC" ]] || fail "StartGc: $LINE"
JOB=$(val job)
LINE=$(gc operator wait "$JOB")
[[ $LINE == "OK state=JOB_STATE_SUCCEEDED "* ]] || fail "gc job: $LINE"
[ "$(val removed)" -eq 16 ] && [ "$(val removed_bytes)" -eq "$RECLAIM" ] ||
  fail "the gc job removed other than the status said: $LINE (status: $RECLAIM)"
echo "ok: gc job $JOB removed $(val removed) chunks, $(val removed_bytes) bytes"
run_expect 0 "$OFFHOST" jobs --server "unix:$SOCK" --token-file "$WORK/operator.token" --json
grep -q '"JOB_TYPE_GC"\|"gc"' <<<"$OUT" || fail "offhost jobs does not list the gc job: $OUT"
run_expect 0 "$OFFHOST" gc --server "unix:$SOCK" --token-file "$WORK/operator.token" --datastore-name main
expect_output "removed: 0 unused chunks"
expect_output "main: gc:"
stop_server offhostd
run_expect 0 "$OFFHOST" verify --datastore "$DS"
run_expect 0 "$OFFHOST" restore --datastore "$DS" vm01@latest --to "$WORK/r.raw"
expect_identical "$WORK/vm.raw" "$WORK/r.raw"
echo PASS
