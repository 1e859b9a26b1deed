#!/usr/bin/env bash
# A libvirt domain that is not running has no QEMU to take a view from: `--driver libvirt`
# reads its disk images as they are through the image driver (nothing can write them), stores
# the domain XML and UUID, names excluded disks, and leaves no helper behind. Once the domain
# runs, the same command backs it up through libvirt again. A stopped domain whose image this
# proxy cannot reach is refused with what to do.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/libvirt_lib.sh"
need qemu-system-x86_64 qemu-img qemu-io python3
start_libvirtd

DOM=offhost-off-$$
GONE=offhost-gone-$$
undefine_all() {
  destroy_domains
  for d in "$DOM" "$GONE"; do V undefine "$d" >/dev/null 2>&1 || true; done
}
trap 'undefine_all; cleanup' EXIT

DISK=$WORK/$DOM.qcow2
qemu-img create -q -f qcow2 "$DISK" 128M
qemu-io -f qcow2 -c "write -q -P 0x5a 0 6M" -c "write -q -P 0x21 70M 2M" "$DISK" >/dev/null
create_domain "$DOM" "$DISK"   # writes $WORK/$DOM.xml and starts it transiently...
V destroy "$DOM" >/dev/null    # ...so define it from that XML and keep it shut off
V define "$WORK/$DOM.xml" >/dev/null || fail "could not define $DOM"
[ "$(V domstate "$DOM")" = "shut off" ] || fail "domain should be shut off: $(V domstate "$DOM")"

DS=$WORK/ds
"$OFFHOST" datastore init "$DS" >/dev/null
backup() {
  "$OFFHOST" backup --datastore "$DS" --driver libvirt --connect "$LIBVIRT_URI" --domain "$1" --json
}

J=$(backup "$DOM") || fail "backup of the shut-off domain failed: $J"
json_field "$J" 'j["consistency_reason"]' | grep -q "is not running" || fail "consistency reason: $J"
[ "$(json_field "$J" 'j["vm_uuid"]')" = "$(V domuuid "$DOM")" ] || fail "UUID not recorded: $J"
[ "$(json_field "$J" 'len(j["disks"])')" -eq 1 ] || fail "only vda can be backed up: $J"
json_field "$J" 'j["excluded"][0]["reason"]' | grep -q "cdrom" || fail "the CD-ROM must be excluded: $J"
[ "$(V domstate "$DOM")" = "shut off" ] || fail "the backup started the domain"
pgrep -f "image-$DOM@" >/dev/null && fail "a qemu-nbd of the backup is still running"
run_expect 0 "$OFFHOST" snapshots --datastore "$DS" --config "$DOM@latest"
expect_output "<name>$DOM</name>"
qemu-img convert -f qcow2 -O raw "$DISK" "$WORK/disk.raw"
run_expect 0 "$OFFHOST" restore --datastore "$DS" "$DOM@latest" --to "$WORK/r1.raw"
expect_identical "$WORK/disk.raw" "$WORK/r1.raw"
echo "ok: the shut-off domain was backed up from its image, restore identical"

# running again: the same command goes through libvirt's pull-mode backup
V start "$DOM" >/dev/null || fail "could not start $DOM"
DOMAINS+=("$DOM")
J=$(backup "$DOM") || fail "backup of the running domain failed: $J"
json_field "$J" 'j["consistency_reason"]' | grep -q "guest agent" || fail "not via libvirt: $J"
[ -n "$(json_field "$J" 'j["checkpoint"]')" ] || fail "no checkpoint from the running domain: $J"
echo "ok: once running, the domain is backed up through libvirt"

# a shut-off domain whose image is not on this proxy
sed -e "s#<name>$DOM</name>#<name>$GONE</name>#" -e "s#$DISK#/nonexistent/$GONE.qcow2#" \
  "$WORK/$DOM.xml" >"$WORK/$GONE.xml"
V define "$WORK/$GONE.xml" >/dev/null || fail "could not define $GONE"
run_expect 1 "$OFFHOST" backup --datastore "$DS" --driver libvirt --connect "$LIBVIRT_URI" --domain "$GONE"
expect_output "is not running and its disk vda (/nonexistent/$GONE.qcow2) is not reachable from this proxy"
[ "$("$OFFHOST" snapshots --datastore "$DS" --json | grep -c "$GONE")" -eq 0 ] ||
  fail "a snapshot of $GONE appeared"
echo PASS
