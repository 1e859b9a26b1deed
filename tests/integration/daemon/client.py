#!/usr/bin/env python3
"""A small offhost.v1 client for the daemon tests: one call, one line of output.

    client.py GEN_DIR (--unix PATH | --tcp HOST:PORT --ca CA [--cert CRT --key KEY])
              [--token-file FILE] health|services|whoami|start-verify|download
              |hosts|vms|vm|discover [--full] [--parent P] [--name N] [--uuid U]

download streams --snapshot/--path (from --offset) with RestoreService.DownloadFiles into
--out, checks the chunks are contiguous and the trailer's SHA-256, and prints
"OK snapshot=... format=... content=N offset=N bytes=N sha256=HEX".

hosts (ListHosts), vms (ListVms of --parent, filtered by --uuid/--name) and vm (GetVm of
--name) print one item per resource, joined by " | ":
    hosts/NAME driver=DRIVER_X address=A vms=N ds=D status=STATE_X
    hosts/H/vms/V uuid=U power=P latest=yes|- disks=vda:SIZE:FORMAT:inc|full,... error=E
--full asks for HOST_VIEW_FULL / VM_VIEW_FULL. discover runs DiscoverIscsiTargets of --name:
    IQN luns=LUN:TYPE:SIZE:URI[VG/LV:SIZE:URI;...],... error=E | ...

GEN_DIR holds the Python modules generated from grpc/proto and from health.proto and
reflection.proto beside this file (see gen_stubs in test_daemon_auth.sh). Prints
"OK <detail>" or "<STATUS_CODE> reason=<ErrorInfo.reason> <message>"; exits 0 either way,
so the test compares the line. The token comes from a file, as it would never be put on a
command line.
"""
import argparse
import sys


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("gen_dir")
    p.add_argument("--unix")
    p.add_argument("--tcp")
    p.add_argument("--ca")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--token-file")
    p.add_argument("--snapshot")
    p.add_argument("--path")
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--out")
    p.add_argument("--full", action="store_true")
    p.add_argument("--parent", default="hosts/-")
    p.add_argument("--name", default="")
    p.add_argument("--uuid", default="")
    p.add_argument("call", choices=["health", "services", "whoami", "start-verify", "download",
                                    "hosts", "vms", "vm", "discover", "credentials"])
    return p.parse_args()


def read(path):
    with open(path, "rb") as f:
        return f.read()


def channel(args):
    import grpc
    if args.unix:
        return grpc.insecure_channel("unix:" + args.unix)
    key = read(args.key) if args.key else None
    cert = read(args.cert) if args.cert else None
    creds = grpc.ssl_channel_credentials(read(args.ca), key, cert)
    return grpc.secure_channel(args.tcp, creds)


def metadata(args):
    if not args.token_file:
        return ()
    return (("authorization", "Bearer " + read(args.token_file).decode().strip()),)


def download(args, ch, md):
    import hashlib
    from offhost.v1 import restore_pb2, restore_pb2_grpc
    req = restore_pb2.DownloadFilesRequest(snapshot=args.snapshot, path=args.path,
                                           offset=args.offset)
    header, trailer, sha = None, None, hashlib.sha256()
    with open(args.out, "wb") as out:
        for msg in restore_pb2_grpc.RestoreServiceStub(ch).DownloadFiles(req, metadata=md,
                                                                         timeout=60):
            part = msg.WhichOneof("part")
            if part == "header":
                header = msg.header
            elif part == "chunk":
                if msg.chunk.offset != args.offset + out.tell():
                    raise SystemExit(f"chunk at {msg.chunk.offset}, want {args.offset + out.tell()}")
                if len(msg.chunk.data) > 1 << 20:
                    raise SystemExit(f"chunk of {len(msg.chunk.data)} bytes, over 1 MiB")
                out.write(msg.chunk.data)
                sha.update(msg.chunk.data)
            elif part == "trailer":
                trailer = msg.trailer
        sent = out.tell()
    if header is None or trailer is None:
        raise SystemExit("no header or no trailer")
    if trailer.sha256 != sha.digest() or trailer.bytes_sent != sent:
        raise SystemExit("the trailer does not match the bytes received")
    fmt = restore_pb2.DownloadFormat.Name(header.format)
    return (f"snapshot={header.snapshot} format={fmt} content={header.content_length_bytes} "
            f"offset={header.offset} bytes={sent} sha256={sha.hexdigest()}")


def host_line(h):
    from offhost.v1 import common_pb2, inventory_pb2
    status = (inventory_pb2.HostStatus.State.Name(h.status.state)
              if h.HasField("status") else "-")
    return (f"{h.name} driver={common_pb2.Driver.Name(h.driver)} address={h.address or '-'} "
            f"vms={h.vm_count} ds={h.default_datastore or '-'} status={status}")


def vm_line(vm):
    from offhost.v1 import inventory_pb2
    power = inventory_pb2.Vm.PowerState.Name(vm.power_state).replace("POWER_STATE_", "")
    disks = ",".join(f"{d.name}:{d.size_bytes}:{d.format or '-'}:"
                     f"{'inc' if d.incremental_possible else 'full'}" for d in vm.disks)
    excluded = ",".join(x.name for x in vm.excluded_disks)
    return (f"{vm.name} uuid={vm.uuid or '-'} power={power} "
            f"latest={'yes' if vm.latest_snapshot else '-'} disks={disks or '-'} "
            f"excluded={excluded or '-'} error={vm.inventory_error or '-'}")


def lvs(lun):
    if not lun.logical_volumes:
        return ""
    return "[" + ";".join(f"{v.volume_group}/{v.logical_volume}:{v.size_bytes}:{v.uri}"
                          for v in lun.logical_volumes) + "]"


def inventory(args, ch, md):
    from offhost.v1 import inventory_pb2 as pb, inventory_pb2_grpc as rpc
    stub = rpc.InventoryServiceStub(ch)
    if args.call == "hosts":
        view = pb.HOST_VIEW_FULL if args.full else pb.HOST_VIEW_BASIC
        reply = stub.ListHosts(pb.ListHostsRequest(view=view), metadata=md, timeout=60)
        return " | ".join(host_line(h) for h in reply.hosts)
    view = pb.VM_VIEW_FULL if args.full else pb.VM_VIEW_BASIC
    if args.call == "vm":
        return vm_line(stub.GetVm(pb.GetVmRequest(name=args.name, view=view), metadata=md,
                                  timeout=60))
    if args.call == "credentials":
        reply = stub.ListCredentials(pb.ListCredentialsRequest(), metadata=md, timeout=60)
        return " | ".join(f"{c.name} kind={pb.CredentialKind.Name(c.kind)} {c.description}"
                          for c in reply.credentials)
    if args.call == "discover":
        reply = stub.DiscoverIscsiTargets(pb.DiscoverIscsiTargetsRequest(host=args.name),
                                          metadata=md, timeout=60)
        return " | ".join(
            f"{t.iqn} luns=" + ",".join(f"{l.lun}:{l.device_type}:{l.size_bytes}:{l.uri}"
                                        + lvs(l) for l in t.luns) + f" error={t.error or '-'}"
            for t in reply.targets)
    vms, token = [], ""
    while True:  # every page, two VMs at a time: the pages are followed too
        reply = stub.ListVms(pb.ListVmsRequest(parent=args.parent, view=view, uuid=args.uuid,
                                               hypervisor_name=args.name, page_size=2,
                                               page_token=token), metadata=md, timeout=60)
        vms.extend(reply.vms)
        token = reply.next_page_token
        if not token:
            return " | ".join(vm_line(vm) for vm in vms)


def call(args, ch, md):
    if args.call == "download":
        return download(args, ch, md)
    if args.call in ("hosts", "vms", "vm", "discover", "credentials"):
        return inventory(args, ch, md)
    if args.call == "health":
        import health_pb2 as pb  # generated into gen_dir
        import health_pb2_grpc as rpc
        reply = rpc.HealthStub(ch).Check(pb.HealthCheckRequest(service=""), timeout=10)
        return pb.HealthCheckResponse.ServingStatus.Name(reply.status)
    if args.call == "services":
        import reflection_pb2 as pb
        import reflection_pb2_grpc as rpc
        stub = rpc.ServerReflectionStub(ch)
        replies = stub.ServerReflectionInfo(
            iter([pb.ServerReflectionRequest(list_services="")]), timeout=10)
        names = [s.name for r in replies for s in r.list_services_response.service]
        return " ".join(sorted(names))
    if args.call == "whoami":
        from offhost.v1 import common_pb2, system_pb2, system_pb2_grpc
        p = system_pb2_grpc.SystemServiceStub(ch).WhoAmI(
            system_pb2.WhoAmIRequest(), metadata=md, timeout=10).principal
        return (f"name={p.name} role={common_pb2.Role.Name(p.role)} "
                f"method={common_pb2.AuthMethod.Name(p.auth_method)} "
                f"subject={p.client_certificate_subject or '-'} peer={p.peer}")
    from offhost.v1 import datastore_pb2, datastore_pb2_grpc
    job = datastore_pb2_grpc.DatastoreServiceStub(ch).StartVerify(
        datastore_pb2.StartVerifyRequest(request_id="8d5e1f2a-0000-4000-8000-000000000001"),
        metadata=md, timeout=10)
    return job.name


def error_reason(err):
    from offhost.v1 import common_pb2
    for key, value in err.trailing_metadata() or ():
        if key == "offhost-error-bin":
            return common_pb2.ErrorInfo.FromString(value).reason
    return "-"


def main():
    args = parse_args()
    sys.path.insert(0, args.gen_dir)
    import grpc
    ch = channel(args)
    try:
        print("OK", call(args, ch, metadata(args)))
    except grpc.RpcError as err:
        print(err.code().name, f"reason={error_reason(err)}", err.details())


if __name__ == "__main__":
    main()
