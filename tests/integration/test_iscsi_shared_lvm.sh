#!/usr/bin/env bash
# Shared LVM on a SAN LUN, the way KVM clusters keep VM disks: one volume group on the whole
# LUN, one logical volume per VM disk. Each LV is backed up by name (iscsi://…/LUN#VG/LV)
# through its segments on the LUN, without device-mapper and without the hypervisor, and
# restores byte-identical; the files inside it are catalogued; discover lists the LVs; a
# missing LV is named with the ones there are; the LUN is never written.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/tgt_lib.sh"
need mkfs.ext4 sfdisk sha256sum

IQN=iqn.2026-11.test.offhost:san-shared
LUN=$WORK/lun.img
export OFFHOST_INITIATOR_NAME_FILE=/nonexistent

# Two VM disks: vm1's a partitioned disk with an ext4 file system (24 MiB), vm2's a raw mixed
# disk (32 MiB) that lands in two segments, with vm1's between them.
mkdir -p "$WORK/tree/etc"
echo "vm1 on shared LVM" >"$WORK/tree/etc/motd"
head -c 300000 /dev/urandom >"$WORK/tree/etc/blob"
truncate -s 20M "$WORK/vm1.part"
mkfs.ext4 -q -F -d "$WORK/tree" "$WORK/vm1.part" >/dev/null
truncate -s 24M "$WORK/vm1.img"
printf 'label: dos\nstart=2048, size=%d, type=83\n' $((20 * 2048)) | sfdisk -q "$WORK/vm1.img"
dd if="$WORK/vm1.part" of="$WORK/vm1.img" bs=1M seek=1 conv=notrunc,sparse status=none
make_mixed_disk "$WORK/vm2.img" 32

truncate -s 96M "$LUN"
SEGMENTS=("vm2-disk0 0 3 0" "vm1-disk0 0 6 3" "vm2-disk0 3 5 9")
lvm_vg "$LUN" 0 $((96 << 20)) san "${SEGMENTS[@]}"
for seg in "${SEGMENTS[@]}"; do
  read -r lv le count pe <<<"$seg"
  lvm_put "$LUN" 0 "$WORK/${lv%-disk0}.img" "$le" "$count" "$pe"
done
SUM_BEFORE=$(sha256sum <"$LUN")

start_tgtd
add_target 1 "$IQN"
add_lun 1 1 "$LUN"
DS=$WORK/ds
new_datastore "$DS"

# discover shows the volume group's logical volumes under the LUN.
run_expect 0 "$OFFHOST" discover "iscsi://127.0.0.1:$TGT_PORT" --initiator-name iqn.2026-11.test:proxy
expect_output "san/vm1-disk0"
expect_output "san/vm2-disk0"

for vm in vm1 vm2; do
  run_expect 0 "$OFFHOST" backup --datastore "$DS" --driver iscsi --vm "$vm" \
    --initiator-name iqn.2026-11.test:proxy --disk "vda=$(iscsi_uri "$IQN" 1)#san/$vm-disk0" --json
  size=$(json_field "$OUT" 'j["disks"][0]["size"]')
  [ "$size" -eq "$(stat -c %s "$WORK/$vm.img")" ] || fail "$vm: disk size $size is not the LV's"
  run_expect 0 "$OFFHOST" restore --datastore "$DS" "$vm@latest" --to "$WORK/$vm.restored"
  expect_identical "$WORK/$vm.img" "$WORK/$vm.restored"
done

# The files inside vm1's LV were catalogued during the backup and restore from the backup.
run_expect 0 "$OFFHOST" ls --datastore "$DS" vm1@latest:/vda1/etc
expect_output "motd"
mkdir "$WORK/files"
run_expect 0 "$OFFHOST" restore-file --datastore "$DS" vm1@latest:/vda1/etc/blob --to "$WORK/files"
expect_identical "$WORK/tree/etc/blob" "$WORK/files/blob"

# A logical volume that is not there: the error names the ones that are.
run_expect 1 "$OFFHOST" backup --datastore "$DS" --driver iscsi --vm vm3 \
  --initiator-name iqn.2026-11.test:proxy --disk "vda=$(iscsi_uri "$IQN" 1)#san/vm3-disk0"
expect_output "no logical volume san/vm3-disk0"
expect_output "san/vm1-disk0"

[ "$(sha256sum <"$LUN")" = "$SUM_BEFORE" ] || fail "the LUN's bytes changed"
run_expect 0 "$OFFHOST" verify --datastore "$DS"
echo PASS
