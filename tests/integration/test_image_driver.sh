#!/usr/bin/env bash
# The image driver: disk image files of a VM that is not running, in every format it reads,
# backed up through its own read-only qemu-nbd and restored byte-identical; the images are
# never modified; incrementals from a persistent qcow2 bitmap, with the bitmap's safety rules;
# an image a running QEMU holds is refused; no qemu-nbd and no socket outlive a backup, even a
# killed one.
source "$(dirname "$0")/lib.sh"
need qemu-nbd qemu-img qemu-io python3 sha256sum pgrep

DS=$WORK/ds
VIEWS=$DS/tmp/views  # the drivers' work directory
new_datastore "$DS"
SIZE=$((48 << 20))

# no_leftovers: no qemu-nbd with a socket in the work directory, no file of the driver there.
no_leftovers() {
  local left
  left=$(pgrep -af "qemu-nbd.*$VIEWS/" || true)
  [ -z "$left" ] || fail "qemu-nbd still runs after the backup: $left"
  left=$(find "$VIEWS" -maxdepth 1 -name 'image-*' 2>/dev/null || true)
  [ -z "$left" ] || fail "the backup left files in $VIEWS: $left"
}

# image_backup VM PATH [ARGS...]: backs PATH up as disk vda of VM, asserts exit 0 and no
# leftovers, prints the JSON.
image_backup() {
  local vm=$1 path=$2
  shift 2
  run_expect 0 "$OFFHOST" backup --datastore "$DS" --driver image --vm "$vm" --disk "vda=$path" --json "$@"
  no_leftovers
  printf '%s\n' "$OUT"
}

# expect_restores VM REFERENCE: the latest backup of VM restores to REFERENCE's bytes.
expect_restores() {
  rm -f "$WORK/restored.raw"
  run_expect 0 "$OFFHOST" restore --datastore "$DS" "$1@latest" --disk vda --to "$WORK/restored.raw"
  expect_identical "$2" "$WORK/restored.raw"
}

# as_raw IMAGE FORMAT: prints the path of IMAGE converted to raw (the guest's view of it).
as_raw() {
  qemu-img convert -q -U -f "$2" -O raw "$1" "$1.raw"
  echo "$1.raw"
}

# --- every format, full backups, images unchanged ------------------------------------------
make_mixed_disk "$WORK/disk.raw" 48
qemu-img convert -q -f raw -O qcow2 "$WORK/disk.raw" "$WORK/disk.qcow2"
qemu-img convert -q -f raw -O vmdk "$WORK/disk.raw" "$WORK/disk.vmdk"
qemu-img convert -q -f raw -O vhdx "$WORK/disk.raw" "$WORK/disk.vhdx"
# vpc rounds the size to a CHS geometry unless told to keep it
qemu-img convert -q -f raw -O vpc -o force_size=on "$WORK/disk.raw" "$WORK/disk.vhd"
for ext in raw qcow2 vmdk vhdx vhd; do
  img=$WORK/disk.$ext
  before=$(sha256sum <"$img")
  J=$(image_backup "vm-$ext" "$img")
  [ "$(json_field "$J" 'j["driver"]')" = image ] || fail "$ext: driver: $J"
  [ "$(json_field "$J" 'j["disks"][0]["size"]')" -eq "$SIZE" ] || fail "$ext: size: $J"
  [ "$(json_field "$J" 'j["disks"][0]["incremental"]')" = False ] || fail "$ext: incremental: $J"
  json_field "$J" 'j["disks"][0]["full_reason"]' | grep -q 'no --bitmap given' ||
    fail "$ext: full_reason: $J"
  json_field "$J" 'j["consistency_reason"]' | grep -q 'VM that is not running' ||
    fail "$ext: consistency_reason: $J"
  expect_restores "vm-$ext" "$WORK/disk.raw"
  [ "$(sha256sum <"$img")" = "$before" ] || fail "the backup modified $img"
done

# a VM name of 128 characters (FQDNs make long ones): its export's socket path would be too
# long for a unix socket, so the driver names the socket by a hash in the same folder
LONG=customer-portal.frontend-01.$(printf 'x%.0s' $(seq 1 83)).prod.example.com
[ ${#LONG} -eq 128 ] || fail "LONG has ${#LONG} characters"
image_backup "$LONG" "$WORK/disk.qcow2" >/dev/null
expect_restores "$LONG" "$WORK/disk.raw"

qemu-img convert -q -f raw -O qed "$WORK/disk.raw" "$WORK/disk.qed"
run_expect 1 "$OFFHOST" backup --datastore "$DS" --driver image --vm bad --disk "vda=$WORK/disk.qed"
expect_output "in format 'qed', which the image driver does not read"
run_expect 2 "$OFFHOST" backup --datastore "$DS" --driver image --vm bad --disk "vda=$WORK"
expect_output "is not a regular file or block device"
run_expect 1 "$OFFHOST" backup --datastore "$DS" --driver image --vm bad --disk "vda=$WORK/nothing.qcow2"
expect_output "nothing.qcow2 cannot be opened"
no_leftovers

# --- incrementals from a persistent qcow2 bitmap ---------------------------------------------
BM=$WORK/bm.qcow2
qemu-img convert -q -f raw -O qcow2 "$WORK/disk.raw" "$BM"
qemu-img bitmap --add --enable "$BM" bm0
J=$(image_backup bm "$BM" --bitmap bm0)
json_field "$J" 'j["disks"][0]["full_reason"]' | grep -q 'no previous backup of this VM was read with bitmap bm0' || fail "first: $J"
json_field "$J" 'j["checkpoint"]' | grep -q '^image-bitmap:' || fail "no checkpoint: $J"

qemu-io -f qcow2 -c 'write -q -P 0xab 8M 1M' "$BM" >/dev/null
before=$(sha256sum <"$BM")
J=$(image_backup bm "$BM" --bitmap bm0)
[ "$(json_field "$J" 'j["disks"][0]["incremental"]')" = True ] || fail "expected an incremental: $J"
read_bytes=$(json_field "$J" 'j["disks"][0]["bytes_read"]')
[ "$read_bytes" -ge $((1 << 20)) ] && [ "$read_bytes" -le $((2 << 20)) ] ||
  fail "the incremental read $read_bytes bytes, expected about the 1 MiB written: $J"
[ "$(sha256sum <"$BM")" = "$before" ] || fail "the incremental modified $BM"
expect_restores bm "$(as_raw "$BM" qcow2)"
# --full reads everything but still records the bitmap for the next incremental
J=$(image_backup bm "$BM" --bitmap bm0 --full)
[ "$(json_field "$J" 'j["disks"][0]["full_reason"]')" = "full backup requested" ] || fail "--full: $J"
json_field "$J" 'j["checkpoint"]' | grep -q '"dirty":1048576' || fail "--full recorded no checkpoint: $J"

# the bitmap deleted and re-created since: it marks less than at the previous backup
qemu-img bitmap --remove "$BM" bm0
qemu-img bitmap --add --enable "$BM" bm0
qemu-io -f qcow2 -c 'write -q -P 0xcd 20M 64k' "$BM" >/dev/null
J=$(image_backup bm "$BM" --bitmap bm0)
[ "$(json_field "$J" 'j["disks"][0]["incremental"]')" = False ] || fail "a reset bitmap was trusted: $J"
json_field "$J" 'j["disks"][0]["full_reason"]' | grep -q 'bitmap bm0 was reset since the previous backup' ||
  fail "full_reason of a reset bitmap: $J"
expect_restores bm "$(as_raw "$BM" qcow2)"
# ... and that full is the new base
qemu-io -f qcow2 -c 'write -q -P 0xef 30M 1M' "$BM" >/dev/null
J=$(image_backup bm "$BM" --bitmap bm0)
[ "$(json_field "$J" 'j["disks"][0]["incremental"]')" = True ] || fail "no incremental after the new base: $J"
expect_restores bm "$(as_raw "$BM" qcow2)"

# a disabled bitmap records nothing, a missing one cannot be used
qemu-img bitmap --disable "$BM" bm0
J=$(image_backup bm "$BM" --bitmap bm0)
json_field "$J" 'j["disks"][0]["full_reason"]' | grep -q 'bitmap bm0 is disabled' || fail "disabled: $J"
qemu-img bitmap --enable "$BM" bm0
J=$(image_backup bm "$BM" --bitmap nosuch)
json_field "$J" 'j["disks"][0]["full_reason"]' | grep -q 'bitmap nosuch is not in' || fail "missing: $J"

# --- the base image of a running overlay (QEMU holds it read-only) opens fine --------------
qemu-img create -q -f qcow2 -b "$BM" -F qcow2 "$WORK/overlay.qcow2"
serve_nbd_writable overlay "$WORK/overlay.qcow2" qcow2 >/dev/null
J=$(image_backup bm "$BM" --bitmap bm0)
expect_restores bm "$(as_raw "$BM" qcow2)"

# --- an image a running QEMU holds for writing is refused -----------------------------------
run_expect 1 "$OFFHOST" backup --datastore "$DS" --driver image --vm busy --disk "vda=$WORK/overlay.qcow2"
expect_output "overlay.qcow2 is in use by a running QEMU/VM"
expect_output "--driver libvirt or --driver qemu"
no_leftovers
stop_server overlay

# a backing chain is followed: the overlay (now idle) with its own data
qemu-io -f qcow2 -c 'write -q -P 0x5a 40M 512k' "$WORK/overlay.qcow2" >/dev/null
J=$(image_backup chain "$WORK/overlay.qcow2")
expect_restores chain "$(as_raw "$WORK/overlay.qcow2" qcow2)"

# --- a VM that crashed with the bitmap in use: the bitmap is inconsistent --------------------
serve_nbd_writable crash "$BM" qcow2 >/dev/null
# Killed only once the image says the bitmap is in use: a qemu-nbd killed while it rewrites
# the bitmap directory (at open) can leave an image with no bitmap at all (seen under load).
for _ in $(seq 1 100); do
  qemu-img info -U --output=json "$BM" | grep -q '"in-use"' && break
  sleep 0.05
done
stop_server crash KILL
J=$(image_backup bm "$BM" --bitmap bm0)
json_field "$J" 'j["disks"][0]["full_reason"]' |
  grep -q 'bitmap bm0 is inconsistent (the VM crashed while it was in use)' || fail "crashed: $J"
expect_restores bm "$(as_raw "$BM" qcow2)"

# --- a killed proxy leaves no export running, and a stale one is ended by the next run ------
rm -f "$WORK/hold" "$WORK/hold.ready"
OFFHOST_TEST_HOLD_VIEW=$WORK/hold "$OFFHOST" backup --datastore "$DS" --driver image --vm killed \
  --disk "vda=$WORK/disk.qcow2" >/dev/null 2>&1 &
proxy=$!
for _ in $(seq 1 100); do [ -e "$WORK/hold.ready" ] && break; sleep 0.1; done
[ -e "$WORK/hold.ready" ] || fail "the backup did not reach its view"
pgrep -f "qemu-nbd.*$VIEWS/image-killed@vda.sock" >/dev/null || fail "no export while the backup runs"
kill -9 "$proxy"
wait "$proxy" 2>/dev/null || true
for _ in $(seq 1 50); do pgrep -f "qemu-nbd.*$VIEWS/image-killed@vda.sock" >/dev/null || break; sleep 0.1; done
pgrep -f "qemu-nbd.*$VIEWS/image-killed@vda.sock" >/dev/null && fail "qemu-nbd outlived the killed proxy"
# what a proxy that died some other way leaves: a running export and its files
qemu-nbd --read-only -f raw --socket="$VIEWS/image-killed@vda.sock" --persistent "$WORK/disk.raw" \
  >/dev/null 2>&1 &
stale=$!
track_server stale "$stale"
echo "$stale" >"$VIEWS/image-killed@vda.pid"
wait_for_socket "$VIEWS/image-killed@vda.sock"
J=$(image_backup killed "$WORK/disk.qcow2")
pid_alive "$stale" && fail "the stale export (pid $stale) still runs"
expect_restores killed "$WORK/disk.raw"

run_expect 0 "$OFFHOST" verify --datastore "$DS"
echo PASS
