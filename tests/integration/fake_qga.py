#!/usr/bin/env python3
"""A stand-in for the QEMU guest agent on a unix socket, for tests of quiescing.
fake_qga.py SOCKET LOG MODE: MODE "ok" answers guest-sync, guest-fsfreeze-freeze/-thaw/-status
and appends each command to LOG; MODE "hang" accepts connections and never answers."""
import json
import os
import socket
import sys
import time

path, log, mode = sys.argv[1], sys.argv[2], sys.argv[3]
if os.path.exists(path):
    os.unlink(path)
srv = socket.socket(socket.AF_UNIX)
srv.bind(path)
srv.listen(4)
frozen = False
while True:
    conn, _ = srv.accept()
    if mode == "hang":
        time.sleep(3600)
    f = conn.makefile("rw")
    for line in f:
        msg = json.loads(line)
        cmd = msg.get("execute")
        with open(log, "a") as out:
            out.write(cmd + "\n")
        if cmd == "guest-sync":
            ret = msg["arguments"]["id"]
        elif cmd == "guest-fsfreeze-freeze":
            frozen, ret = True, 2
        elif cmd == "guest-fsfreeze-thaw":
            frozen, ret = False, 2
        elif cmd == "guest-fsfreeze-status":
            ret = "frozen" if frozen else "thawed"
        else:
            f.write(json.dumps({"error": {"class": "CommandNotFound", "desc": cmd}}) + "\n")
            f.flush()
            continue
        f.write(json.dumps({"return": ret}) + "\n")
        f.flush()
