#!/usr/bin/env bash
# offhostd: configuration checks, listeners and authentication. Starts the daemon on a unix
# socket and on 127.0.0.1:<free port> with TLS and client certificates (a CA, a server
# certificate, a valid and an expired client certificate, all made here with openssl), then
# calls it with a Python grpcio client (daemon/client.py, stubs generated here): health,
# reflection, WhoAmI with a good, a missing and a wrong token, an expired or missing client
# certificate, a read-only token on an operator RPC; the refusals are in the daemon's log.
# Bad configurations make offhostd exit non-zero, naming line and key, with nothing listening.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/daemon/lib.sh"
need openssl

# make_pki: $WORK/pki/{ca,server,client,expired,rogue}.{crt,key} (rogue: self-signed). The expired certificate comes from
# `openssl ca`, the one OpenSSL 3.0 command that takes explicit start and end dates.
make_pki() {
  local d=$WORK/pki
  mkdir -p "$d/issued"
  : >"$d/index.txt"
  echo 01 >"$d/serial"
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  openssl req -x509 "${ec[@]}" -keyout "$d/ca.key" -out "$d/ca.crt" -days 2 \
    -subj "/CN=offhost test client CA" 2>/dev/null
  openssl req "${ec[@]}" -keyout "$d/server.key" -out "$d/server.csr" -subj "/CN=localhost" \
    2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$d/server.ext"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 2 -extfile "$d/server.ext" -out "$d/server.crt" 2>/dev/null
  openssl req "${ec[@]}" -keyout "$d/client.key" -out "$d/client.csr" -subj "/CN=backup-app" \
    2>/dev/null
  openssl x509 -req -in "$d/client.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 2 -out "$d/client.crt" 2>/dev/null
  openssl req -x509 "${ec[@]}" -keyout "$d/rogue.key" -out "$d/rogue.crt" -days 2 \
    -subj "/CN=rogue" 2>/dev/null
  openssl req "${ec[@]}" -keyout "$d/expired.key" -out "$d/expired.csr" -subj "/CN=old-app" \
    2>/dev/null
  cat >"$d/ca.cnf" <<CNF
[ca]
default_ca = test_ca
[test_ca]
database = $d/index.txt
new_certs_dir = $d/issued
certificate = $d/ca.crt
private_key = $d/ca.key
serial = $d/serial
default_md = sha256
policy = any
[any]
commonName = supplied
CNF
  openssl ca -batch -config "$d/ca.cnf" -in "$d/expired.csr" -out "$d/expired.crt" -notext \
    -startdate 20200101000000Z -enddate 20200102000000Z 2>/dev/null
}

free_port() {
  "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# port_open PORT: true when something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
  "$PYTHON" -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' \
    "$1" 2>/dev/null
}

gen_stubs
make_pki
PORT=$(free_port)
SOCK=$WORK/run/offhostd.sock
OPERATOR_HASH=$(token operator)
READER_HASH=$(token reader)
echo "not-a-configured-token" >"$WORK/wrong.token"
cat >"$WORK/offhostd.toml" <<EOF2
[server]
unix_socket = "$SOCK"
listen = ["127.0.0.1:$PORT"]
audit_log = "$WORK/log/audit.log"
state_dir = "$WORK/state"

[server.tls]
certificate = "pki/server.crt"      # relative to this file
private_key = "pki/server.key"
client_ca = "pki/ca.crt"

[[token]]
name = "backup-app"
sha256 = "$OPERATOR_HASH"
role = "operator"

[[token]]
name = "auditor"
sha256 = "$READER_HASH"
role = "read-only"

[[datastore]]
name = "main"
path = "$WORK/ds"
EOF2

"$OFFHOSTD" --check-config "$WORK/offhostd.toml" | grep -q "valid" || fail "good config refused"
"$OFFHOSTD" --config "$WORK/offhostd.toml" 2>"$WORK/offhostd.log" &
track_server offhostd $!
wait_for_socket "$SOCK"
for _ in $(seq 1 100); do port_open "$PORT" && break; sleep 0.1; done
port_open "$PORT" || fail "offhostd does not listen on 127.0.0.1:$PORT: $(cat "$WORK/offhostd.log")"
grep -q "^<6>offhostd: listening on 127.0.0.1:$PORT" "$WORK/offhostd.log" ||
  fail "no journald-style 'listening' line: $(cat "$WORK/offhostd.log")"
[ "$(stat -c %a "$SOCK")" = 660 ] || fail "socket mode $(stat -c %a "$SOCK"), want 660"

UNIX=(--unix "$SOCK")
TLS=(--tcp "127.0.0.1:$PORT" --ca "$WORK/pki/ca.crt")
GOOD_CERT=(--cert "$WORK/pki/client.crt" --key "$WORK/pki/client.key")
OLD_CERT=(--cert "$WORK/pki/expired.crt" --key "$WORK/pki/expired.key")
# health and reflection need no credentials
expect "OK SERVING" "${UNIX[@]}" health
expect "OK SERVING" "${TLS[@]}" "${GOOD_CERT[@]}" health
expect "OK *grpc.health.v1.Health*offhost.v1.SystemService*" "${UNIX[@]}" services
expect "OK *offhost.v1.DatastoreService*" "${UNIX[@]}" services

# tokens
expect "OK name=backup-app role=ROLE_OPERATOR method=AUTH_METHOD_BEARER_TOKEN subject=- peer=unix:*" \
  "${UNIX[@]}" --token-file "$WORK/operator.token" whoami
expect "UNAUTHENTICATED reason=TOKEN_MISSING *" "${UNIX[@]}" whoami
expect "UNAUTHENTICATED reason=TOKEN_INVALID *" "${UNIX[@]}" --token-file "$WORK/wrong.token" whoami

# TLS with client certificates: the certificate authenticates the connection, the token the
# caller
expect "OK name=auditor role=ROLE_READ_ONLY *subject=CN=backup-app peer=ipv4:127.0.0.1:*" \
  "${TLS[@]}" "${GOOD_CERT[@]}" --token-file "$WORK/reader.token" whoami
expect "UNAUTHENTICATED reason=CLIENT_CERTIFICATE_INVALID *CN=old-app*expired*" \
  "${TLS[@]}" "${OLD_CERT[@]}" --token-file "$WORK/operator.token" whoami
expect "UNAUTHENTICATED reason=CLIENT_CERTIFICATE_INVALID *CN=rogue*self-signed*" \
  "${TLS[@]}" --cert "$WORK/pki/rogue.crt" --key "$WORK/pki/rogue.key" \
  --token-file "$WORK/operator.token" whoami
expect "UNAUTHENTICATED reason=CLIENT_CERTIFICATE_REQUIRED *" \
  "${TLS[@]}" --token-file "$WORK/operator.token" whoami
expect "UNAUTHENTICATED reason=TOKEN_MISSING *" "${TLS[@]}" "${GOOD_CERT[@]}" whoami

# roles: StartVerify needs OPERATOR
expect "PERMISSION_DENIED reason=ROLE_TOO_LOW *read-only*operator*" \
  "${TLS[@]}" "${GOOD_CERT[@]}" --token-file "$WORK/reader.token" start-verify
expect "INVALID_ARGUMENT *" "${UNIX[@]}" --token-file "$WORK/operator.token" start-verify

# every refusal is logged with the peer
log=$WORK/offhostd.log
grep -q "^<4>offhostd: refused a call from unix:.*TOKEN_MISSING" "$log" || fail "no unix refusal logged"
grep -q "^<4>offhostd: refused a call from ipv4:127.0.0.1:[0-9]*: UNAUTHENTICATED CLIENT_CERTIFICATE_INVALID" \
  "$log" || fail "expired certificate refusal not logged: $(cat "$log")"
grep -q "^<4>offhostd: refused a call from ipv4:127.0.0.1:[0-9]*: PERMISSION_DENIED ROLE_TOO_LOW" \
  "$log" || fail "role refusal not logged: $(cat "$log")"
grep -q "<[0-9]>offhostd: .*$(cat "$WORK/operator.token")" "$log" && fail "a token is in the log"

# a second daemon is refused the socket of the running one, which keeps serving
rc=0
timeout 20 "$OFFHOSTD" --config "$WORK/offhostd.toml" 2>"$WORK/second.log" || rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "a second offhostd exited $rc"
grep -q "another server is listening on it" "$WORK/second.log" ||
  fail "second offhostd: $(cat "$WORK/second.log")"
expect "OK SERVING" "${UNIX[@]}" health

# SIGTERM: clean stop, exit 0, socket gone
pid=$(server_pid offhostd)
kill -TERM "$pid"
wait "$pid" || fail "offhostd exited $? on SIGTERM"
grep -q "^<5>offhostd: stopped" "$log" || fail "no 'stopped' line: $(cat "$log")"
[ ! -e "$SOCK" ] || fail "socket $SOCK left behind"

# bad configurations: non-zero exit, the error names line and key, nothing listens
# bad_config NAME PATTERN: runs offhostd on $WORK/NAME.toml and checks the refusal.
bad_config() {
  local name=$1 pattern=$2 rc=0
  timeout 20 "$OFFHOSTD" --config "$WORK/$name.toml" 2>"$WORK/$name.log" || rc=$?
  [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "$name: offhostd exited $rc, want a config error"
  grep -q -- "$pattern" "$WORK/$name.log" || fail "$name: want '$pattern' in: $(cat "$WORK/$name.log")"
  [ ! -e "$SOCK" ] || fail "$name: the unix socket exists"
  port_open "$PORT" && fail "$name: something listens on $PORT"
  "$OFFHOSTD" --check-config "$WORK/$name.toml" >/dev/null 2>&1 && fail "$name: --check-config accepted it"
  echo "ok: $name refused: $(grep -m1 -- "$pattern" "$WORK/$name.log")"
}
sed "s/127.0.0.1:$PORT/0.0.0.0:$PORT/" "$WORK/offhostd.toml" >"$WORK/wildcard.toml"
bad_config wildcard "offhostd.*wildcard.toml:3: server.listen\[0\]: \"0.0.0.0:$PORT\" listens on every network"
sed 's|pki/server.key|pki/missing.key|' "$WORK/offhostd.toml" >"$WORK/missing-key.toml"
bad_config missing-key "missing-key.toml:9: server.tls.private_key: read $WORK/pki/missing.key: No such file"
sed 's|^state_dir|state_dri|' "$WORK/offhostd.toml" >"$WORK/unknown-key.toml"
bad_config unknown-key "unknown-key.toml:5: server.state_dri: unknown key"
echo PASS
