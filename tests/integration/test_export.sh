#!/usr/bin/env bash
# Instant recovery: `offhost export` serves a backup disk over NBD with nbdkit and our plugin.
# - read-only over a unix socket: `qemu-img compare` with the original says identical, the
#   allocation map shows the backup's holes, writes are refused, two clients read at once;
#   Ctrl-C stops it, and so does kill -9 of the command;
# - --overlay (nbdkit's cow filter): writes read back, the rest still reads as the backup, and
#   the datastore is untouched (every chunk and index file byte-identical, verify clean, a
#   restore still equals the original, a new export is the backup again);
# - a QEMU process (q35, TCG) attaches the export as its virtio disk and reads the backup's
#   pattern through the guest's device, and writes into the overlay through it;
# - over TCP on 127.0.0.1, --background and --stop; bad input (unknown disk, wildcard address).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/qemu_lib.sh"
need qemu-nbd qemu-img qemu-io nbdkit nbdinfo qemu-system-x86_64 python3

DS=$WORK/ds
new_datastore "$DS" --chunk-size 1M
make_mixed_disk "$WORK/vm.raw" 40
# A pattern the guest will look for, and a second chunk-sized run for the overlay test.
qemu-io -f raw -c "write -P 0xab 30M 1M" "$WORK/vm.raw" >/dev/null
URI=$(serve_nbd src "$WORK/vm.raw")
backup_json "$DS" web01 "vda=$URI" >/dev/null
stop_server src

# Everything the datastore holds, as it is now: chunk files by name and content, the index's
# files (RocksDB's own LOG aside), the configuration.
datastore_sums() {
  (cd "$DS" && find . -type f ! -name 'LOG*' -print0 | sort -z | xargs -0 sha256sum)
}
datastore_sums >"$WORK/ds.before"

# wait_export OUTFILE PID: waits until the export started as PID printed its URI.
wait_export() {
  local i
  for i in $(seq 1 300); do
    grep -q '^exporting ' "$1" && return 0
    pid_alive "$2" || fail "offhost export ended before serving: $(cat "$1")"
    sleep 0.1
  done
  fail "offhost export did not serve within 30 s: $(cat "$1")"
}

# --- read-only, foreground, unix socket ---------------------------------------------------------
SOCK=$WORK/ro.sock
"$OFFHOST" export --datastore "$DS" web01@latest --disk vda --socket "$SOCK" >"$WORK/ro.out" 2>&1 &
EXPORT_PID=$!
PIDS+=("$EXPORT_PID")
wait_export "$WORK/ro.out" "$EXPORT_PID"
grep -q "read-only) at nbd+unix:///?socket=$SOCK" "$WORK/ro.out" || fail "no URI line: $(cat "$WORK/ro.out")"
RO_URI="nbd+unix:///?socket=$SOCK"
OUT=$(qemu-img compare -f raw -F raw "$WORK/vm.raw" "$RO_URI" 2>&1) || fail "export differs from the original: $OUT"
grep -q "Images are identical" <<<"$OUT" || fail "qemu-img compare: $OUT"
# The backup's holes and zero runs are announced, so clients skip them.
MAP=$(nbdinfo --map "$RO_URI")
grep -q "hole,zero" <<<"$MAP" || fail "no holes in the export's allocation map: $MAP"
grep -q "data" <<<"$MAP" || fail "no data in the export's allocation map: $MAP"
run_expect 1 qemu-io -f raw -c "write -P 0x11 0 4k" "$RO_URI"
# Two connections at once (a hypervisor and nbdcopy, say) read the same bytes.
qemu-io -f raw -r -c "read -P 0xab 30M 1M" "$RO_URI" >/dev/null &
reader=$!
qemu-io -f raw -r -c "read -P 0xab 30M 1M" "$RO_URI" >/dev/null || fail "second reader failed"
wait "$reader" || fail "first reader failed"
kill -INT "$EXPORT_PID"
wait "$EXPORT_PID" || fail "offhost export did not end cleanly on Ctrl-C: $(cat "$WORK/ro.out")"
grep -q "stopped the export of web01@" "$WORK/ro.out" || fail "no stop line: $(cat "$WORK/ro.out")"
pgrep -f "nbdkit.*$SOCK" >/dev/null && fail "nbdkit still runs after the export stopped"
# kill -9 of the command ends the export too (nbdkit -f follows its parent).
"$OFFHOST" export --datastore "$DS" web01@latest --socket "$SOCK" >"$WORK/k.out" 2>&1 &
EXPORT_PID=$!
PIDS+=("$EXPORT_PID")
wait_export "$WORK/k.out" "$EXPORT_PID"
NBDKIT=$(pgrep -f "nbdkit.*$SOCK") || fail "no nbdkit behind the export"
kill -9 "$EXPORT_PID"
for _ in $(seq 1 100); do pid_alive "$NBDKIT" || break; sleep 0.1; done
pid_alive "$NBDKIT" && fail "nbdkit $NBDKIT outlived the killed offhost export"

# --- overlay, background, written through qemu-io --------------------------------------------------
OV=$WORK/ov.sock
run_expect 0 "$OFFHOST" export --datastore "$DS" web01@latest --socket "$OV" --overlay --background
expect_output "writes kept in a throwaway overlay"
expect_output "offhost export --stop --socket $OV"
[ -s "$OV.pid" ] || fail "no pid file beside the socket"
track_server ov "$(cat "$OV.pid")"  # stopped by cleanup if the test fails before --stop
OV_URI="nbd+unix:///?socket=$OV"
qemu-io -f raw -c "write -P 0x5a 2M 64k" -c "write -z 30M 4k" "$OV_URI" >/dev/null ||
  fail "write into the overlay failed"
qemu-io -f raw -r -c "read -P 0x5a 2M 64k" -c "read -P 0 30M 4k" -c "read -P 0xab $(((30 << 20) + 4096)) 1020k" \
  "$OV_URI" >/dev/null || fail "the overlay did not read back what was written"
# Outside what was written, the export is still the backup.
qemu-img convert -f raw -O raw "$OV_URI" "$WORK/ov.raw"
cmp -n $((2 << 20)) "$WORK/vm.raw" "$WORK/ov.raw" >/dev/null || fail "overlay changed bytes before 2M"
cmp -i $(((2 << 20) + 65536)) -n $((20 << 20)) "$WORK/vm.raw" "$WORK/ov.raw" >/dev/null ||
  fail "overlay changed bytes after the write"

# --- a QEMU process attaches the overlay export as its disk ---------------------------------------
# HMP's qemu-io prints to QEMU's stdout (line-buffered here, so each answer is in the log).
stdbuf -oL qemu-system-x86_64 -machine q35 -accel tcg -nodefaults -display none -m 64 \
  -blockdev "driver=nbd,server.type=unix,server.path=$OV,node-name=ir0" \
  -device virtio-blk-pci,drive=ir0,id=vd0 \
  -qmp "unix:$WORK/ir.qmp,server=on,wait=off" >"$WORK/ir.qemu.log" 2>&1 &
PIDS+=("$!")
wait_for_socket "$WORK/ir.qmp"
qmp ir query-status >/dev/null
# guest_io "qemu-io command": runs it on the guest's virtio device; prints what it printed.
guest_io() {
  local before
  before=$(wc -l <"$WORK/ir.qemu.log")
  qmp ir human-monitor-command \
    "{\"command-line\": \"qemu-io -d /machine/peripheral/vd0/virtio-backend \\\"$1\\\"\"}" >/dev/null
  tail -n +$((before + 1)) "$WORK/ir.qemu.log"
}
OUT=$(guest_io "read -P 0xab 31522816 64k")
grep -q "read 65536/65536 bytes" <<<"$OUT" && ! grep -q "Pattern verification failed" <<<"$OUT" ||
  fail "the guest did not read the backup's pattern: $OUT"
OUT=$(guest_io "read -P 0xcd 31522816 64k")
grep -q "Pattern verification failed" <<<"$OUT" || fail "a wrong pattern was not noticed: $OUT"
OUT=$(guest_io "write -P 0x77 5M 128k")
grep -q "wrote 131072/131072 bytes" <<<"$OUT" || fail "the guest could not write: $OUT"
OUT=$(guest_io "read -P 0x77 5M 128k")
grep -q "read 131072/131072 bytes" <<<"$OUT" && ! grep -q "Pattern verification failed" <<<"$OUT" ||
  fail "the guest's write did not read back: $OUT"
qmp ir quit >/dev/null || true

run_expect 0 "$OFFHOST" export --stop --socket "$OV"
expect_output "stopped the export"
[ ! -e "$OV.pid" ] || fail "pid file left after --stop"
run_expect 1 "$OFFHOST" export --stop --socket "$OV"
expect_output "does not exist"

# --- the datastore never saw a write ------------------------------------------------------------------
datastore_sums >"$WORK/ds.after"
diff "$WORK/ds.before" "$WORK/ds.after" >/dev/null ||
  fail "the datastore changed while exported: $(diff "$WORK/ds.before" "$WORK/ds.after" | head)"
run_expect 0 "$OFFHOST" verify --datastore "$DS"
run_expect 0 "$OFFHOST" restore --datastore "$DS" web01@latest --to "$WORK/restored.raw"
expect_identical "$WORK/vm.raw" "$WORK/restored.raw"

# --- TCP on a loopback address; a new export is the backup again ------------------------------------
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
run_expect 0 "$OFFHOST" export --datastore "$DS" web01@latest --listen "127.0.0.1:$PORT" \
  --overlay --background --pid-file "$WORK/tcp.pid"
expect_output "at nbd://127.0.0.1:$PORT"
track_server tcp-export "$(cat "$WORK/tcp.pid")"
OUT=$(qemu-img compare -f raw -F raw "$WORK/vm.raw" "nbd://127.0.0.1:$PORT" 2>&1) ||
  fail "a new overlay export is not the backup: $OUT"
# The port is taken now: a second export says so, with nbdkit's own words.
SECONDS=0
run_expect 1 "$OFFHOST" export --datastore "$DS" web01@latest --listen "127.0.0.1:$PORT" \
  --background --pid-file "$WORK/tcp2.pid"
expect_output "Address already in use"
if [ -z "${ASAN_OPTIONS:-}" ]; then
  expect_output "nbdkit could not serve web01@"
  [ "$SECONDS" -lt 8 ] || fail "a failed background export took $SECONDS s to report"
else
  # With the sanitizer runtime preloaded, this nbdkit hangs in its exit handlers (libp11-kit's
  # destructor waits on glibc's locale lock): offhost gives up on it after its start timeout.
  expect_output "nbdkit did not start serving web01@"
fi
run_expect 0 "$OFFHOST" export --stop --pid-file "$WORK/tcp.pid"

# --- bad input ----------------------------------------------------------------------------------------
run_expect 1 "$OFFHOST" export --datastore "$DS" web01@latest --disk vdz --socket "$WORK/x.sock"
expect_output "has no disk 'vdz'; its disks: vda"
run_expect 1 "$OFFHOST" export --datastore "$DS" web02@latest --socket "$WORK/x.sock"
expect_output "web02"
run_expect 2 "$OFFHOST" export --datastore "$DS" web01@latest --listen "0.0.0.0:$PORT"
expect_output "every network of the proxy"
run_expect 2 "$OFFHOST" export --datastore "$DS" web01@latest
expect_output "--socket PATH or --listen HOST:PORT"
run_expect 2 "$OFFHOST" export --stop
expect_output "--socket PATH or the --pid-file FILE"
[ ! -e "$WORK/x.sock" ] || fail "a failed export left its socket"
echo "PASS"
