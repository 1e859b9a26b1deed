#!/usr/bin/env python3
"""Tiny QMP client for tests: qmp.py SOCKET COMMAND [JSON-ARGUMENTS] prints the command's
"return" as JSON; exits 1 with the error text when QEMU answers with an error."""
import json
import socket
import sys


def main():
    path, command = sys.argv[1], sys.argv[2]
    args = json.loads(sys.argv[3]) if len(sys.argv) > 3 else None
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(path)
    f = s.makefile("rw")
    json.loads(f.readline())  # greeting

    def execute(cmd, arguments=None):
        msg = {"execute": cmd}
        if arguments is not None:
            msg["arguments"] = arguments
        f.write(json.dumps(msg) + "\n")
        f.flush()
        while True:
            reply = json.loads(f.readline())
            if "event" not in reply:
                return reply

    execute("qmp_capabilities")
    reply = execute(command, args)
    if "error" in reply:
        print(reply["error"].get("desc", reply["error"]), file=sys.stderr)
        sys.exit(1)
    print(json.dumps(reply.get("return", {})))


if __name__ == "__main__":
    main()
