#!/usr/bin/env bash
# The iscsi driver (Direct SAN) against tgt: a sparse LUN is backed up reading only its mapped
# blocks (GET LBA STATUS) and restores byte-identical; CHAP, mutual CHAP and initiator-name
# masking log in or are refused with an actionable error that never shows a secret; a target
# that dies mid-backup fails the backup cleanly; discover lists the LUN; the LUNs' backing
# files are never written.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/tgt_lib.sh"
need tgtd tgtadm python3 sha256sum
export OFFHOST_INITIATOR_NAME_FILE=/nonexistent  # the proxy's own /etc/iscsi must not matter

DS=$WORK/ds
new_datastore "$DS"
start_tgtd

SIZE_MIB=256
LUN_IMG=$WORK/lun.raw
make_mixed_disk "$LUN_IMG" "$SIZE_MIB"
SUM_BEFORE=$(sha256sum <"$LUN_IMG")
IQN=iqn.2026-11.org.offhost.test:sparse
add_target 1 "$IQN"
add_lun 1 1 "$LUN_IMG"

# --- backup + restore: identical, holes never read --------------------------------------------
J=$(run_expect 0 "$OFFHOST" backup --datastore "$DS" --driver iscsi --vm lun \
  --disk "sda=$(iscsi_uri "$IQN" 1)" --json && printf '%s\n' "$OUT")
read -r size bytes_read unalloc full_reason <<<"$(json_field "$J" \
  '" ".join(str(j["disks"][0][k]) for k in ("size","bytes_read","unallocated_bytes","full_reason"))')"
[ "$size" -eq $((SIZE_MIB << 20)) ] || fail "size $size: $J"
[ "$unalloc" -gt $(((SIZE_MIB - 40) << 20)) ] || fail "holes were not reported as unallocated: $J"
[ "$bytes_read" -lt $((40 << 20)) ] || fail "bytes_read $bytes_read: holes were read: $J"
[[ $full_reason == *"no changed-block tracking"* ]] || fail "full_reason: $J"
[ "$(json_field "$J" 'j["driver"]')" = iscsi ] || fail "driver: $J"
run_expect 0 "$OFFHOST" restore --datastore "$DS" lun@latest --to "$WORK/lun.restored"
expect_identical "$LUN_IMG" "$WORK/lun.restored"

# A "#VG/LV" fragment is not the transport's: the LUN opens and the proxy looks for the LV
# (this LUN holds no LVM, so that backup fails naming the LV, not the URI).
run_expect 1 "$OFFHOST" backup --datastore "$DS" --driver iscsi --vm lun \
  --disk "sda=$(iscsi_uri "$IQN" 1)#vg0/lv0"
expect_output "vg0/lv0"
if grep -q "not a valid iSCSI URI" <<<"$OUT"; then fail "the #VG/LV fragment reached libiscsi: $OUT"; fi
[ "$(snapshot_count "$DS" lun)" -eq 1 ] || fail "a failed backup left a snapshot"

# --- discover ------------------------------------------------------------------------------------
run_expect 0 "$OFFHOST" discover "iscsi://127.0.0.1:$TGT_PORT"
expect_output "$IQN"
expect_output "$(iscsi_uri "$IQN" 1)"
expect_output "256.00 MiB"
run_expect 0 "$OFFHOST" discover "iscsi://127.0.0.1:$TGT_PORT" --json
[ "$(json_field "$OUT" '[l["size"] for t in j for l in t["luns"] if l["lun"] == 1][0]')" -eq \
  $((SIZE_MIB << 20)) ] || fail "discover --json size: $OUT"
[ "$(json_field "$OUT" '[l["thin"] for t in j for l in t["luns"] if l["lun"] == 1][0]')" = True ] ||
  fail "discover --json thin: $OUT"

# --- unknown target / LUN, not a disk --------------------------------------------------------------
run_expect 1 "$OFFHOST" backup --datastore "$DS" --driver iscsi --vm bad \
  --disk "sda=$(iscsi_uri iqn.2026-11.org.offhost.test:nope 1)"
expect_output "not found"
run_expect 1 "$OFFHOST" backup --datastore "$DS" --driver iscsi --vm bad \
  --disk "sda=$(iscsi_uri "$IQN" 9)"
expect_output "LUN 9 does not exist"
run_expect 1 "$OFFHOST" backup --datastore "$DS" --driver iscsi --vm bad \
  --disk "sda=$(iscsi_uri "$IQN" 0)"  # tgt's LUN 0 is its array controller
expect_output "not a disk"

# --- CHAP and mutual CHAP -----------------------------------------------------------------------
CHAP_IQN=iqn.2026-11.org.offhost.test:chap
SECRET=ChapSecret-4711x
TARGET_SECRET=TargetSecret-0815
add_target 2 "$CHAP_IQN"
add_lun 2 1 "$LUN_IMG"
add_chap 2 backup "$SECRET"
CHAP_URI=$(iscsi_uri "$CHAP_IQN" 1 backup)
no_secret_shown() {
  for s in "$SECRET" "$TARGET_SECRET" wrong-secret-123; do
    if grep -qF -- "$s" <<<"$OUT"; then fail "a secret appears in the output: $OUT"; fi
  done
}
OFFHOST_CHAP_SECRET=wrong-secret-123 run_expect 1 "$OFFHOST" backup --datastore "$DS" \
  --driver iscsi --vm chap --disk "sda=$CHAP_URI"
expect_output "refused"
expect_output "CHAP"
no_secret_shown
run_expect 1 "$OFFHOST" backup --datastore "$DS" --driver iscsi --vm chap \
  --disk "sda=$(iscsi_uri "$CHAP_IQN" 1 backup%wrong-secret-123)"
expect_output "backup%***@"
no_secret_shown
OFFHOST_CHAP_SECRET=$SECRET run_expect 0 "$OFFHOST" backup --datastore "$DS" --driver iscsi \
  --vm chap --disk "sda=$CHAP_URI"
no_secret_shown
printf '%s\n' "$SECRET" >"$WORK/chap.secret"
printf '%s\n' "$TARGET_SECRET" >"$WORK/target.secret"
add_chap 2 array "$TARGET_SECRET" --outgoing
run_expect 0 "$OFFHOST" backup --datastore "$DS" --driver iscsi --vm chap --disk "sda=$CHAP_URI" \
  --chap-secret-file "$WORK/chap.secret" --target-chap-user array \
  --target-chap-secret-file "$WORK/target.secret"
no_secret_shown
# the target proving itself with another secret: we refuse it
OFFHOST_TARGET_CHAP_SECRET=wrong-secret-123 run_expect 1 "$OFFHOST" backup --datastore "$DS" \
  --driver iscsi --vm chap --disk "sda=$CHAP_URI" --chap-secret-file "$WORK/chap.secret" \
  --target-chap-user array
no_secret_shown
run_expect 0 "$OFFHOST" restore --datastore "$DS" chap@latest --to "$WORK/chap.restored"
expect_identical "$LUN_IMG" "$WORK/chap.restored"

# --- initiator-name masking: open-iscsi's file, else --initiator-name -------------------------
ACL_IQN=iqn.2026-11.org.offhost.test:masked
ALLOWED=iqn.1993-08.org.debian:01:offhost-proxy
add_target 3 "$ACL_IQN"
add_lun 3 1 "$LUN_IMG"
allow_only_initiator 3 "$ALLOWED"
printf '## written by open-iscsi\n# InitiatorName=iqn.commented:out\nInitiatorName=%s\n' "$ALLOWED" \
  >"$WORK/initiatorname.iscsi"
run_expect 1 "$OFFHOST" backup --datastore "$DS" --driver iscsi --vm masked \
  --disk "sda=$(iscsi_uri "$ACL_IQN" 1)" --initiator-name iqn.2026-11.org.offhost.test:other
expect_output "iqn.2026-11.org.offhost.test:other"
run_expect 0 "$OFFHOST" backup --datastore "$DS" --driver iscsi --vm masked \
  --disk "sda=$(iscsi_uri "$ACL_IQN" 1)" --initiator-name "$ALLOWED"
OFFHOST_INITIATOR_NAME_FILE=$WORK/initiatorname.iscsi run_expect 0 "$OFFHOST" backup \
  --datastore "$DS" --driver iscsi --vm masked --disk "sda=$(iscsi_uri "$ACL_IQN" 1)"

# --- the target dies mid-backup -----------------------------------------------------------------
BIG_IMG=$WORK/big.raw
head -c 96M /dev/urandom >"$BIG_IMG"
BIG_SUM=$(sha256sum <"$BIG_IMG")
BIG_IQN=iqn.2026-11.org.offhost.test:big
add_target 4 "$BIG_IQN"
add_lun 4 1 "$BIG_IMG" thick
HOLD=$WORK/hold
OFFHOST_TEST_HOLD_VIEW=$HOLD "$OFFHOST" backup --datastore "$DS" --driver iscsi --vm big \
  --disk "sda=$(iscsi_uri "$BIG_IQN" 1)" >"$WORK/big.out" 2>&1 &
BACKUP=$!
for i in $(seq 1 100); do [ -e "$HOLD.ready" ] && break; sleep 0.1; done
[ -e "$HOLD.ready" ] || fail "the backup did not reach its view: $(cat "$WORK/big.out")"
stop_server tgtd KILL
touch "$HOLD"
rc=0
timeout 120 tail --pid="$BACKUP" -f /dev/null || fail "the backup hangs after the target died"
wait "$BACKUP" || rc=$?
[ "$rc" -ne 0 ] || fail "the backup succeeded with its target gone: $(cat "$WORK/big.out")"
OUT=$(cat "$WORK/big.out")
expect_output "the target may have gone down"
expect_output "$BIG_IQN"
[ "$(snapshot_count "$DS" big)" -eq 0 ] || fail "a snapshot of the failed backup was listed"
run_expect 0 "$OFFHOST" verify --datastore "$DS"

# --- the LUNs were only read ----------------------------------------------------------------------
[ "$(sha256sum <"$LUN_IMG")" = "$SUM_BEFORE" ] || fail "the LUN's backing file was modified"
[ "$(sha256sum <"$BIG_IMG")" = "$BIG_SUM" ] || fail "the big LUN's backing file was modified"

echo PASS
