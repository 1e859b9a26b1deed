#!/usr/bin/env python3
"""offhost.v1 ExportService calls for test_daemon_export.sh: one call, one line of output.

    export_client.py GEN_DIR SOCKET TOKEN_FILE start SNAPSHOT DISK [overlay] [listen=HOST:PORT]
    export_client.py GEN_DIR SOCKET TOKEN_FILE stop NAME
    export_client.py GEN_DIR SOCKET TOKEN_FILE list

Prints "OK name=... snapshot=... disk=... size=... uri=... overlay=... by=..." (list: one
such group per export, "OK count=N" first), or "<STATUS_CODE> reason=<ErrorInfo.reason>
<message>" when the call fails, like client.py.
"""
import sys


def error_reason(err):
    from offhost.v1 import common_pb2
    for key, value in err.trailing_metadata() or ():
        if key == "offhost-error-bin":
            return common_pb2.ErrorInfo.FromString(value).reason
    return "-"


def describe(e):
    return (f"name={e.name} snapshot={e.snapshot} disk={e.disk} size={e.size_bytes} "
            f"uri={e.uri} overlay={e.overlay} by={e.started_by} "
            f"started={e.start_time.seconds > 0}")


def call(ch, md, args):
    from offhost.v1 import export_pb2, export_pb2_grpc
    stub = export_pb2_grpc.ExportServiceStub(ch)
    if args[0] == "start":
        req = export_pb2.StartExportRequest(snapshot=args[1], disk=args[2])
        for opt in args[3:]:
            if opt == "overlay":
                req.overlay = True
            elif opt.startswith("listen="):
                req.listen_address = opt[len("listen="):]
        return describe(stub.StartExport(req, metadata=md, timeout=60))
    if args[0] == "stop":
        return describe(stub.StopExport(export_pb2.StopExportRequest(name=args[1]),
                                        metadata=md, timeout=30))
    exports = stub.ListExports(export_pb2.ListExportsRequest(), metadata=md, timeout=10).exports
    return " | ".join([f"count={len(exports)}"] + [describe(e) for e in exports])


def main():
    gen_dir, socket, token_file = sys.argv[1:4]
    sys.path.insert(0, gen_dir)
    import grpc
    with open(token_file) as f:
        md = (("authorization", "Bearer " + f.read().strip()),)
    ch = grpc.insecure_channel("unix:" + socket)
    try:
        print("OK", call(ch, md, sys.argv[4:]))
    except grpc.RpcError as err:
        print(err.code().name, f"reason={error_reason(err)}", err.details())


if __name__ == "__main__":
    main()
