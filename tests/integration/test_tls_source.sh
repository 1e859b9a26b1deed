#!/usr/bin/env bash
# An nbds:// source: nbdkit requires TLS (PSK); offhost backs up through it and restores
# byte-identical; a plain connection to the same server is refused with a clear error.
source "$(dirname "$0")/lib.sh"
need nbdkit qemu-img openssl

make_mixed_disk "$WORK/disk.raw" 48
echo "alice:$(openssl rand -hex 32)" >"$WORK/keys.psk"
nbdkit --tls=require --tls-psk="$WORK/keys.psk" --unix "$WORK/tls.sock" --readonly -f \
  file "$WORK/disk.raw" >"$WORK/nbdkit.log" 2>&1 &
PIDS+=($!)
wait_for_socket "$WORK/tls.sock"

"$OFFHOST" datastore init "$WORK/ds" >/dev/null
run_expect 0 "$OFFHOST" backup --datastore "$WORK/ds" --vm tls-vm \
  --disk "vda=nbds+unix://alice@/?socket=$WORK/tls.sock&tls-psk-file=$WORK/keys.psk"
run_expect 0 "$OFFHOST" restore --datastore "$WORK/ds" tls-vm@latest --to "$WORK/out.raw"
cmp "$WORK/disk.raw" "$WORK/out.raw" || fail "restore over TLS source differs"

run_expect 1 "$OFFHOST" backup --datastore "$WORK/ds" --vm tls-vm \
  --disk "vda=nbd+unix:///?socket=$WORK/tls.sock"
expect_output "requires TLS"
echo PASS
