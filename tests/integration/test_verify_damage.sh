#!/usr/bin/env bash
# Damage in the chunk store: one flipped payload byte, then a deleted chunk file. verify exits 3
# naming the chunk and its users; restore refuses to produce a wrong disk and leaves no file.
source "$(dirname "$0")/lib.sh"
need qemu-nbd python3

DS=$WORK/ds
new_datastore "$DS"
make_mixed_disk "$WORK/disk.raw" 32
URI=$(serve_nbd src "$WORK/disk.raw")
J=$(backup_json "$DS" web01 "vda=$URI")
SNAP=$(json_field "$J" 'j["snapshot"]')
run_expect 0 "$OFFHOST" verify --datastore "$DS"
expect_output "all good"

# The chunk holding disk offset 4 MiB (random data from make_mixed_disk) — found by hashing the
# source's second 4 MiB, which is how chunks are named.
chunk_of() {  # chunk_of FILE OFFSET → sha256 hex of the 4 MiB chunk at OFFSET
  python3 - "$1" "$2" <<'EOF'
import hashlib, sys
with open(sys.argv[1], "rb") as f:
    f.seek(int(sys.argv[2]))
    print(hashlib.sha256(f.read(4 << 20)).hexdigest())
EOF
}
HEX=$(chunk_of "$WORK/disk.raw" $((4 << 20)))
CHUNK_FILE=$DS/chunks/${HEX:0:4}/$HEX
[ -f "$CHUNK_FILE" ] || fail "expected chunk file $CHUNK_FILE; have: $(find "$DS/chunks" -type f)"
OTHER=$(chunk_of "$WORK/disk.raw" 0)
[ -f "$DS/chunks/${OTHER:0:4}/$OTHER" ] || fail "expected chunk file for offset 0"

# --- flip one payload byte (after the 56-byte header) -----------------------------------------
cp "$CHUNK_FILE" "$WORK/chunk.good"
python3 - "$CHUNK_FILE" <<'EOF'
import os, sys
path = sys.argv[1]
with open(path, "r+b") as f:
    f.seek(56 + (os.path.getsize(path) - 56) // 2)
    b = f.read(1)
    f.seek(-1, 1)
    f.write(bytes([b[0] ^ 0x01]))
EOF
cmp -s "$CHUNK_FILE" "$WORK/chunk.good" && fail "the chunk file did not change"

run_expect 3 "$OFFHOST" verify --datastore "$DS"
expect_output "DAMAGED chunk $HEX:"
expect_output "used by web01@$SNAP disk vda at offset $((4 << 20))"
expect_output "1 damaged"
grep -qF "$OTHER" <<<"$OUT" && fail "verify reported the intact chunk $OTHER as damaged"

run_expect 3 "$OFFHOST" verify --datastore "$DS" --json
[ "$(json_field "$OUT" 'j["ok"]')" = False ] || fail "verify --json says ok: $OUT"
[ "$(json_field "$OUT" 'len(j["damaged"])')" -eq 1 ] || fail "expected one damaged chunk: $OUT"
[ "$(json_field "$OUT" 'j["damaged"][0]["chunk"]')" = "$HEX" ] || fail "wrong chunk: $OUT"
[ "$(json_field "$OUT" 'j["damaged"][0]["used_by"][0]["vm"]')" = web01 ] || fail "used_by vm: $OUT"
[ "$(json_field "$OUT" 'j["damaged"][0]["used_by"][0]["snapshot"]')" = "$SNAP" ] || fail "used_by snapshot: $OUT"
[ "$(json_field "$OUT" 'j["damaged"][0]["used_by"][0]["disk"]')" = vda ] || fail "used_by disk: $OUT"
[ "$(json_field "$OUT" 'j["damaged"][0]["used_by"][0]["offsets"]')" = "[$((4 << 20))]" ] || fail "used_by offsets: $OUT"

# no_restore_left NAME: nothing named NAME or NAME.something (a temporary) is in $WORK
no_restore_left() {
  local left
  left=$(cd "$WORK" && ls -d "$1" "$1".* 2>/dev/null || true)
  [ -z "$left" ] || fail "a failed restore left $left behind in $WORK"
}

# restore must fail, name the chunk and the disk offset, and leave no file behind
run_expect 1 "$OFFHOST" restore --datastore "$DS" "web01@$SNAP" --to "$WORK/restored.raw"
expect_output "$HEX"
expect_output "disk offset $((4 << 20))"
no_restore_left restored.raw

# --force over an existing file: the failed restore must not leave a half-written disk there —
# the old file is either gone or untouched
echo "previous contents" >"$WORK/existing.raw"
run_expect 1 "$OFFHOST" restore --datastore "$DS" web01@latest --to "$WORK/existing.raw" --force
expect_output "$HEX"
if [ -e "$WORK/existing.raw" ]; then
  [ "$(cat "$WORK/existing.raw")" = "previous contents" ] ||
    fail "a failed --force restore left a half-written $WORK/existing.raw"
fi
[ -z "$(cd "$WORK" && ls -d existing.raw.* 2>/dev/null)" ] || fail "a failed restore left $(cd "$WORK" && ls -d existing.raw.*)"

# a writable NBD target: the restore fails with the same message
qemu-img create -q -f raw "$WORK/target.raw" 32M
URI_T=$(serve_nbd_writable target "$WORK/target.raw")
run_expect 1 "$OFFHOST" restore --datastore "$DS" "web01@$SNAP" --to "$URI_T"
expect_output "$HEX"
expect_output "disk offset $((4 << 20))"
stop_server target

# repairing the chunk makes everything good again
cp "$WORK/chunk.good" "$CHUNK_FILE"
run_expect 0 "$OFFHOST" verify --datastore "$DS"
run_expect 0 "$OFFHOST" restore --datastore "$DS" "web01@$SNAP" --to "$WORK/restored.raw"
expect_identical "$WORK/disk.raw" "$WORK/restored.raw"
rm -f "$WORK/restored.raw"

# --- damage to the header (checksummed) is found too -----------------------------------------
python3 - "$CHUNK_FILE" <<'EOF'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(9)  # inside the raw-size field
    b = f.read(1)
    f.seek(-1, 1)
    f.write(bytes([b[0] ^ 0x40]))
EOF
run_expect 3 "$OFFHOST" verify --datastore "$DS"
expect_output "DAMAGED chunk $HEX:"
cp "$WORK/chunk.good" "$CHUNK_FILE"

# --- a truncated chunk file ---------------------------------------------------------------------
truncate -s -1 "$CHUNK_FILE"
run_expect 3 "$OFFHOST" verify --datastore "$DS"
expect_output "DAMAGED chunk $HEX:"
cp "$WORK/chunk.good" "$CHUNK_FILE"

# --- a deleted chunk file -------------------------------------------------------------------------
rm "$CHUNK_FILE"
run_expect 3 "$OFFHOST" verify --datastore "$DS"
expect_output "DAMAGED chunk $HEX: missing"
expect_output "used by web01@$SNAP disk vda at offset $((4 << 20))"
run_expect 3 "$OFFHOST" verify --datastore "$DS" --json
[ "$(json_field "$OUT" 'j["damaged"][0]["reason"]')" = missing ] || fail "reason: $OUT"
run_expect 1 "$OFFHOST" restore --datastore "$DS" "web01@$SNAP" --to "$WORK/restored.raw"
expect_output "$HEX"
expect_output "disk offset $((4 << 20))"
no_restore_left restored.raw

# a second snapshot that shares the chunk: both users are named
cp "$WORK/chunk.good" "$CHUNK_FILE"
J=$(backup_json "$DS" web02 "vda=$URI")
SNAP2=$(json_field "$J" 'j["snapshot"]')
rm "$CHUNK_FILE"
run_expect 3 "$OFFHOST" verify --datastore "$DS"
expect_output "used by web01@$SNAP disk vda at offset $((4 << 20))"
expect_output "used by web02@$SNAP2 disk vda at offset $((4 << 20))"

echo PASS
