#!/usr/bin/env bash
# offhostd ExportService (instant recovery through the API), with the real daemon and a Python
# grpcio client (daemon/export_client.py): an operator starts an export of a backup disk with a
# write overlay; it `qemu-img compare`s identical with the original and takes writes; a
# read-only token may list it but not start or stop one; a wildcard or foreign listen address
# and an unknown disk are refused with their reasons; StopExport ends nbdkit; an export still
# running when the daemon gets SIGTERM is stopped with it, and one left by a daemon killed with
# -9 is stopped when the daemon starts again; the CLI (`offhost export --server`) starts, lists
# and stops one. The datastore is unchanged throughout.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/daemon/lib.sh"
need qemu-nbd qemu-img qemu-io nbdkit

make_mixed_disk "$WORK/vm.raw" 24
URI=$(serve_nbd src "$WORK/vm.raw")
new_datastore "$WORK/ds"
backup_json "$WORK/ds" web01 "vda=$URI" >/dev/null
stop_server src
datastore_sums() { (cd "$WORK/ds" && find . -type f ! -name 'LOG*' -print0 | sort -z | xargs -0 sha256sum); }
datastore_sums >"$WORK/ds.before"

gen_stubs
SOCK=$WORK/run/offhostd.sock
write_daemon_config operator:operator:dr-operator reader:read-only:auditor
HOLD=$WORK/hold  # (start_daemon's backup hold; no backups run here)
start_daemon

# ex TOKEN ARGS...: one ExportService call; the nbdkit processes of the daemon's exports are
# handed to cleanup too (they outlive a daemon killed when a check fails).
ex() {
  "$PYTHON" "$DAEMON_DIR/export_client.py" "$WORK/gen" "$SOCK" "$WORK/$1.token" "${@:2}"
  pgrep -f "nbdkit.*$WORK/state/exports" >>"$WORK/.pids" || true
}
SNAP=datastores/main/vms/web01/snapshots/latest

LINE=$(ex operator start "$SNAP" vda overlay)
[[ $LINE == "OK name=exports/"*" disk=vda size=$((24 << 20)) uri=nbd+unix:///?socket=$WORK/state/exports/"*".sock overlay=True by=dr-operator started=True" ]] ||
  fail "StartExport: $LINE"
[[ $LINE == *"snapshot=datastores/main/vms/web01/snapshots/20"* ]] || fail "snapshot not resolved: $LINE"
NAME=$(field name)
EXPORT_URI=$(field uri)
OUT=$(qemu-img compare -f raw -F raw "$WORK/vm.raw" "$EXPORT_URI" 2>&1) || fail "export differs: $OUT"
qemu-io -f raw -c "write -P 0x42 1M 64k" -c "read -P 0x42 1M 64k" "$EXPORT_URI" >/dev/null ||
  fail "the overlay did not take a write"
grep -q "export-disk.*web01@.* disk vda" "$WORK/log/audit.log" || fail "no audit line: $(cat "$WORK/log/audit.log")"

LINE=$(ex reader list)
[[ $LINE == "OK count=1 | name=$NAME "* ]] || fail "ListExports as read-only: $LINE"
LINE=$(ex reader start "$SNAP" vda)
[[ $LINE == "PERMISSION_DENIED reason=ROLE_TOO_LOW"* ]] || fail "read-only started an export: $LINE"
LINE=$(ex reader stop "$NAME")
[[ $LINE == "PERMISSION_DENIED reason=ROLE_TOO_LOW"* ]] || fail "read-only stopped an export: $LINE"
LINE=$(ex operator start "$SNAP" vdz)
[[ $LINE == "NOT_FOUND reason=DISK_NOT_FOUND"*"(it has: vda)"* ]] || fail "unknown disk: $LINE"
LINE=$(ex operator start datastores/main/vms/nope/snapshots/latest vda)
[[ $LINE == "NOT_FOUND reason="* ]] || fail "unknown VM: $LINE"
LINE=$(ex operator start "$SNAP" vda listen=0.0.0.0:10809)
[[ $LINE == "INVALID_ARGUMENT reason=INVALID_ARGUMENT"*"every network"* ]] || fail "wildcard: $LINE"
LINE=$(ex operator start "$SNAP" vda listen=127.0.0.1:10809)
[[ $LINE == "PERMISSION_DENIED reason=EXPORT_ADDRESS_NOT_ALLOWED"* ]] || fail "foreign address: $LINE"

LINE=$(ex operator stop "$NAME")
[[ $LINE == "OK name=$NAME "* ]] || fail "StopExport: $LINE"
qemu-img info "$EXPORT_URI" >/dev/null 2>&1 && fail "the export still answers after StopExport"
LINE=$(ex operator stop "$NAME")
[[ $LINE == "NOT_FOUND reason=EXPORT_NOT_FOUND"* ]] || fail "second StopExport: $LINE"
[[ $(ex reader list) == "OK count=0" ]] || fail "ListExports after stop: $(ex reader list)"

# The CLI through the daemon (no --datastore: --server), as an operator and as an auditor.
cli() {
  local rc=0
  "$OFFHOST" export --server "unix:$SOCK" --token-file "$WORK/$1.token" "${@:2}" || rc=$?
  pgrep -f "nbdkit.*$WORK/state/exports" >>"$WORK/.pids" || true
  return "$rc"
}
run_expect 0 cli operator web01@latest --overlay
expect_output "writes kept in a throwaway overlay) at nbd+unix:///?socket=$WORK/state/exports/"
CLI_NAME=$(sed -n 's/.*--stop-export \(exports\/[0-9]*\).*/\1/p' <<<"$OUT")
CLI_URI=$(sed -n 's/.* at \(nbd+unix:[^ ]*\) .*/\1/p' <<<"$OUT" | head -1)
[ -n "$CLI_NAME" ] && [ -n "$CLI_URI" ] || fail "no export name or URI in: $OUT"
OUT=$(qemu-img compare -f raw -F raw "$WORK/vm.raw" "$CLI_URI" 2>&1) || fail "CLI export differs: $OUT"
run_expect 0 cli reader --list
expect_output "$CLI_NAME"
run_expect 4 cli reader --stop-export "$CLI_NAME"
run_expect 0 cli operator --stop-export "$CLI_NAME"
expect_output "stopped the export of web01@"
run_expect 2 cli operator web01@latest --socket "$WORK/x.sock"
expect_output "the daemon chooses the unix socket"

# SIGTERM stops the daemon's exports with it.
LINE=$(ex operator start "$SNAP" vda)
EXPORT_URI=$(field uri)
NBDKIT=$(pgrep -f "nbdkit.*$WORK/state/exports") || fail "no nbdkit for the export"
stop_server offhostd TERM
pid_alive "$NBDKIT" && fail "nbdkit $NBDKIT still runs after the daemon stopped"

# kill -9: nbdkit outlives the daemon; the next start stops it.
start_daemon
LINE=$(ex operator start "$SNAP" vda)
NBDKIT=$(pgrep -f "nbdkit.*$WORK/state/exports") || fail "no nbdkit for the export"
stop_server offhostd KILL
pid_alive "$NBDKIT" || echo "note: nbdkit ended with the killed daemon"
start_daemon
for _ in $(seq 1 50); do pid_alive "$NBDKIT" || break; sleep 0.1; done
pid_alive "$NBDKIT" && fail "the export a killed daemon left still runs after a restart"
[[ $(ex reader list) == "OK count=0" ]] || fail "ListExports after restart: $(ex reader list)"

datastore_sums >"$WORK/ds.after"
diff "$WORK/ds.before" "$WORK/ds.after" >/dev/null || fail "the datastore changed: $(diff "$WORK/ds.before" "$WORK/ds.after" | head)"
echo PASS
