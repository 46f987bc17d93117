#!/usr/bin/env python3
"""Writes the checked-in seed corpus of the fuzz targets (tests/fuzz/corpus/).

Each seed is a small valid input in the target's format (see the doc
comment of each fuzz_targets/*.rs): guest memory images holding real
virtio requests, MMIO and vsock operation sequences, agent protocol
frames, OCI documents and tiny layer tarballs. Deterministic: running it
again rewrites the same bytes.

Usage: python3 tests/fuzz/make_corpus.py
"""

import gzip
import io
import json
import os
import shutil
import struct
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")

F_NEXT, F_WRITE, F_INDIRECT = 1, 2, 4


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---------------------------------------------------------------- virtqueues
# Layout of vmrun_virtio::fuzz: descriptor table 0x0, avail ring 0x1000,
# used ring 0x2000, queue size 16; buffers from 0x3000 on.


class Guest:
    def __init__(self):
        self.mem = bytearray(0x3000)
        self.next_desc = 0
        self.heads = []
        self.free = 0x3000
        # Device-writable buffers live above what the seed spells out.
        self.scratch = 0x10000

    def reserve(self, size):
        """Room for a device-writable buffer (left out of the image)."""
        addr = self.scratch
        self.scratch = (addr + size + 15) & ~15
        assert self.scratch <= 0x20000, "guest memory is 128 KiB"
        return addr

    def place(self, data, size=None):
        """Copies `data` into guest memory; returns its address."""
        size = len(data) if size is None else size
        addr = self.free
        end = addr + max(size, 1)
        if len(self.mem) < end:
            self.mem.extend(b"\0" * (end - len(self.mem)))
        self.mem[addr:addr + len(data)] = data
        self.free = (end + 15) & ~15
        return addr

    def desc(self, i, addr, length, flags, nxt):
        struct.pack_into("<QIHH", self.mem, 16 * i, addr, length, flags, nxt)

    def chain(self, bufs):
        """bufs: list of (bytes-or-size, writable). Publishes the chain."""
        head = self.next_desc
        for k, (buf, writable) in enumerate(bufs):
            if isinstance(buf, int):
                addr, length = self.reserve(buf), buf
            else:
                addr, length = self.place(buf), len(buf)
            i = self.next_desc
            self.next_desc += 1
            flags = (F_WRITE if writable else 0) | (F_NEXT if k + 1 < len(bufs) else 0)
            self.desc(i, addr, length, flags, i + 1)
        self.publish(head)
        return head

    def indirect_chain(self, bufs):
        """One descriptor pointing at an indirect table holding `bufs`."""
        table = bytearray(16 * len(bufs))
        for k, (buf, writable) in enumerate(bufs):
            if isinstance(buf, int):
                addr, length = self.reserve(buf), buf
            else:
                addr, length = self.place(buf), len(buf)
            flags = (F_WRITE if writable else 0) | (F_NEXT if k + 1 < len(bufs) else 0)
            struct.pack_into("<QIHH", table, 16 * k, addr, length, flags, k + 1)
        head = self.next_desc
        self.next_desc += 1
        self.desc(head, self.place(bytes(table)), len(table), F_INDIRECT, 0)
        self.publish(head)
        return head

    def publish(self, head):
        n = len(self.heads)
        struct.pack_into("<H", self.mem, 0x1004 + 2 * n, head)
        self.heads.append(head)
        struct.pack_into("<H", self.mem, 0x1002, len(self.heads))

    def image(self):
        return bytes(self.mem)


def blk_header(kind, sector=0):
    return struct.pack("<IIQ", kind, 0, sector)


def blk_seeds():
    t = "virtio_blk_queue"
    g = Guest()
    g.chain([(blk_header(0, 1), False), (512, True), (1, True)])
    write(t, "read", g.image())
    g = Guest()
    g.chain([(blk_header(1, 2), False), (b"\xab" * 1024, False), (1, True)])
    g.chain([(blk_header(0, 2), False), (1024, True), (1, True)])
    write(t, "write-then-read", g.image())
    g = Guest()
    g.chain([(blk_header(4), False), (1, True)])
    g.chain([(blk_header(8), False), (20, True), (1, True)])
    g.chain([(blk_header(99), False), (1, True)])
    write(t, "flush-getid-unsupported", g.image())
    g = Guest()
    g.indirect_chain([(blk_header(0, 0), False), (256, True), (256, True), (1, True)])
    g.chain([(blk_header(0, 63), False), (1024, True), (1, True)])  # past the end
    write(t, "indirect-and-past-end", g.image())


def vsock_header(op, src_port=5000, dst_port=1024, length=0, flags=0,
                 buf_alloc=256 * 1024, fwd_cnt=0, src_cid=3, dst_cid=2, type_=1):
    return struct.pack("<QQIIIHHIII", src_cid, dst_cid, src_port, dst_port,
                       length, type_, op, flags, buf_alloc, fwd_cnt)


def vsock_queue_seeds():
    t = "virtio_vsock_queues"
    g = Guest()
    g.chain([(vsock_header(1), False)])
    g.chain([(4096, True)])
    write(t, "request", g.image())
    g = Guest()
    g.chain([(vsock_header(1), False)])
    g.chain([(vsock_header(5, length=5) + b"hello", False)])
    g.chain([(vsock_header(4, flags=3), False)])
    g.chain([(4096, True)])
    g.chain([(4096, True)])
    write(t, "request-data-shutdown", g.image())
    g = Guest()
    g.chain([(vsock_header(1), False), (4096, True)])
    g.chain([(vsock_header(7), False)])
    g.chain([(vsock_header(3), False)])
    g.chain([(vsock_header(1, src_cid=9), False)])
    g.chain([(vsock_header(1, type_=2), False)])
    write(t, "credit-rst-bad-cid-bad-type", g.image())


FUSE_INIT, FUSE_LOOKUP, FUSE_GETATTR, FUSE_SETATTR = 26, 1, 3, 4
FUSE_SYMLINK, FUSE_MKDIR, FUSE_UNLINK, FUSE_RENAME, FUSE_LINK = 6, 9, 10, 12, 13
FUSE_OPEN, FUSE_READ, FUSE_WRITE, FUSE_RELEASE = 14, 15, 16, 18
FUSE_OPENDIR, FUSE_READDIR, FUSE_CREATE, FUSE_READLINK = 27, 28, 35, 5


def fuse(opcode, unique, nodeid, body=b""):
    return struct.pack("<IIQQIIII", 40 + len(body), opcode, unique, nodeid,
                       0, 0, 1, 0) + body


def fuse_init():
    return fuse(FUSE_INIT, 1, 0, struct.pack("<IIII", 7, 31, 0x20000, 0) + b"\0" * 48)


def fs_guest(requests, read_only):
    g = Guest()
    for req in requests:
        g.chain([(req, False), (4096, True)])
    return g.image() + (b"\x01" if read_only else b"\x00")


def fs_seeds():
    t = "virtio_fs_queue"
    name = lambda s: s.encode() + b"\0"
    # Node ids: the root is 1; passthrough hands out the next ids in order.
    browse = [
        fuse_init(),
        fuse(FUSE_LOOKUP, 2, 1, name("hello.txt")),
        fuse(FUSE_GETATTR, 3, 2, struct.pack("<IIQ", 0, 0, 0)),
        fuse(FUSE_OPEN, 4, 2, struct.pack("<II", os.O_RDONLY, 0)),
        fuse(FUSE_READ, 5, 2, struct.pack("<QQIIQII", 0, 0, 4096, 0, 0, 0, 0)),
        fuse(FUSE_OPENDIR, 6, 1, struct.pack("<II", 0, 0)),
        fuse(FUSE_READDIR, 7, 1, struct.pack("<QQIIQII", 0, 0, 4096, 0, 0, 0, 0)),
        fuse(FUSE_LOOKUP, 8, 1, name("up")),
        fuse(FUSE_READLINK, 9, 3),
        fuse(FUSE_LOOKUP, 10, 1, name("..")),
        fuse(FUSE_LOOKUP, 11, 1, name("sub")),
    ]
    write(t, "browse-rw", fs_guest(browse, False))
    write(t, "browse-ro", fs_guest(browse, True))
    change = [
        fuse_init(),
        fuse(FUSE_MKDIR, 2, 1, struct.pack("<II", 0o755, 0) + name("made")),
        fuse(FUSE_CREATE, 3, 1, struct.pack("<IIII", os.O_RDWR, 0o644, 0, 0) + name("new")),
        fuse(FUSE_WRITE, 4, 3, struct.pack("<QQIIQII", 0, 0, 5, 0, 0, 0, 0) + b"hello"),
        fuse(FUSE_SYMLINK, 5, 1, name("ln") + name("../outside/victim")),
        fuse(FUSE_LOOKUP, 6, 1, name("hello.txt")),
        fuse(FUSE_LINK, 7, 1, struct.pack("<Q", 5) + name("hard")),
        fuse(FUSE_RENAME, 8, 1, struct.pack("<Q", 1) + name("new") + name("renamed")),
        fuse(FUSE_SETATTR, 9, 5, struct.pack("<IIQQQQQQIIIIIIII", 1, 0, 0, 0, 0, 0, 0, 0,
                                            0, 0, 0, 0o600, 0, 0, 0, 0)),
        fuse(FUSE_UNLINK, 10, 1, name("renamed")),
        fuse(FUSE_OPEN, 11, 5, struct.pack("<II", os.O_WRONLY | os.O_TRUNC, 0)),
    ]
    write(t, "change-rw", fs_guest(change, False))
    write(t, "change-ro", fs_guest(change, True))


# ---------------------------------------------------------------- virtio-mmio
# Input: device kind byte (0 blk, 1 vsock), then operations (see
# fuzz_targets/virtio_mmio.rs): 0 read(width pick, offset u16), 1 write
# (width pick, offset u16, value u64), 3 memory write (addr u16, n, bytes),
# 4 bring-up (per queue: size shift u8, desc/avail/used u16 << 4), 5 serve.


def mmio_read(offset, width_pick=0):
    return bytes([0, width_pick]) + struct.pack("<H", offset)


def mmio_write(offset, value, width_pick=0):
    return bytes([1, width_pick]) + struct.pack("<HQ", offset, value)


def mem_write(addr, data):
    out = b""
    for k in range(0, len(data), 31):
        piece = data[k:k + 31]
        out += bytes([3]) + struct.pack("<H", addr + k) + bytes([len(piece)]) + piece
    return out


def mmio_seeds():
    t = "virtio_mmio"
    probe = b"".join(mmio_read(o) for o in range(0, 0x100, 4))
    write(t, "read-all-blk", b"\x00" + probe + b"".join(mmio_read(0x100 + o, 1) for o in range(16)))
    write(t, "read-all-vsock", b"\x01" + probe + mmio_read(0x100, 3))
    # blk: queue of 16 (256 >> 4) at desc 0x0, avail 0x100, used 0x200;
    # one read request in descriptors 0..2, then notify queue 0.
    ring = bytes([4, 4]) + struct.pack("<HHH", 0x0, 0x10, 0x20)
    descs = (struct.pack("<QIHH", 0x1000, 16, F_NEXT, 1)
             + struct.pack("<QIHH", 0x2000, 512, F_NEXT | F_WRITE, 2)
             + struct.pack("<QIHH", 0x3000, 1, F_WRITE, 0))
    request = mem_write(0x0, descs) + mem_write(0x1000, blk_header(0, 1)) + \
        mem_write(0x100, struct.pack("<HHH", 0, 1, 0))
    notify = mmio_write(0x50, 0)
    write(t, "blk-bring-up-read", b"\x00" + ring + request + notify + mmio_read(0x60)
          + mmio_write(0x64, 1) + mmio_write(0x70, 0) + mmio_read(0x70))
    # vsock: three queues of 16: rx at 0x0/0x100/0x200, tx at 0x400/0x500/0x600,
    # event at 0x800/0x900/0xa00. One REQUEST on tx, one RX buffer.
    rings = (bytes([4, 4]) + struct.pack("<HHH", 0x00, 0x10, 0x20)
             + bytes([4]) + struct.pack("<HHH", 0x40, 0x50, 0x60)
             + bytes([4]) + struct.pack("<HHH", 0x80, 0x90, 0xa0))
    tx = (mem_write(0x400, struct.pack("<QIHH", 0x1000, 44, 0, 0))
          + mem_write(0x1000, vsock_header(1))
          + mem_write(0x500, struct.pack("<HHH", 0, 1, 0)))
    rx = (mem_write(0x0, struct.pack("<QIHH", 0x2000, 4096, F_WRITE, 0))
          + mem_write(0x100, struct.pack("<HHH", 0, 1, 0)))
    write(t, "vsock-bring-up-request", b"\x01" + rings + tx + rx + mmio_write(0x50, 1)
          + mmio_write(0x50, 0) + bytes([5]))
    # Out-of-order status writes and queue setup outside negotiation.
    write(t, "status-disorder", b"\x00" + mmio_write(0x70, 4) + mmio_read(0x70)
          + mmio_write(0x70, 0) + mmio_write(0x70, 1) + mmio_write(0x70, 3)
          + mmio_write(0x38, 3) + mmio_write(0x44, 1) + mmio_write(0x70, 11)
          + mmio_write(0x70, 15) + mmio_write(0x100, 1, 1) + mmio_write(0x70, 128))


# ---------------------------------------------------------------- vsock router
# Operations of fuzz_targets/vsock_router.rs; a pick byte i chooses the
# i-th listed value.


def guest_packet(op, len_pick=0, dport_pick=0, sport_pick=0, flags_pick=0,
                 buf_alloc_pick=0, fwd_pick=0):
    return bytes([0, len_pick, 0, 0, sport_pick, dport_pick, 0, op, flags_pick,
                  buf_alloc_pick, fwd_pick])


def rx_op(count=1, size_pick=1):
    return bytes([8, 0, count - 1, size_pick])


def router_seeds():
    t = "vsock_router"
    accept = bytes([3])
    host_write = bytes([4, 1, 0])
    host_read = bytes([5, 0])
    dispatch = bytes([7])
    write(t, "guest-connects", guest_packet(1) + accept + rx_op()
          + host_write + dispatch + rx_op(2) + guest_packet(5, len_pick=2)
          + host_read + guest_packet(7) + rx_op() + guest_packet(4, flags_pick=3)
          + dispatch + rx_op() + bytes([6, 1, 0]) + dispatch + rx_op())
    write(t, "host-connects", bytes([2, 0]) + rx_op()
          + guest_packet(2, dport_pick=2) + host_write + dispatch + rx_op(4, 2)
          + guest_packet(6, buf_alloc_pick=1) + host_write + dispatch + rx_op()
          + guest_packet(3, dport_pick=2) + dispatch)
    write(t, "refused-and-bad", guest_packet(1, dport_pick=4) + rx_op()
          + guest_packet(5, dport_pick=3) + guest_packet(1, sport_pick=1, dport_pick=1)
          + bytes([8, 1, 0]) + guest_packet(8) + rx_op(4, 0) + rx_op(1, 3))


# ---------------------------------------------------------------- protocol


def frame(obj):
    payload = json.dumps(obj, separators=(",", ":")).encode()
    return struct.pack("<I", len(payload)) + payload


def protocol_seeds():
    requests = [
        {"type": "hello", "version": 4},
        {"type": "create", "id": "c1", "spec": {"ociVersion": "1.0.2", "process": {
            "args": ["/bin/sh"], "cwd": "/", "terminal": False}},
         "rootfs": {"kind": "virtio_fs", "tag": "rootfs"},
         "stdio": {"stdin": 1025, "stdout": 1026, "stderr": None}, "no_pivot": True},
        {"type": "create", "id": "c1", "spec": {}, "rootfs": {
            "kind": "block", "device": "/dev/vda", "fstype": "ext4"}, "stdio": {
            "stdin": None, "stdout": None, "stderr": None}},
        {"type": "start", "id": "c1"},
        {"type": "signal", "id": "c1", "signal": 15, "all": True, "exec_id": "e1"},
        {"type": "resize", "id": "c1", "rows": 24, "cols": 80},
        {"type": "wait", "id": "c1", "exec_id": "e1"},
        {"type": "exec", "id": "c1", "exec_id": "e1", "process": {"args": ["ls"]},
         "stdio": {"stdin": None, "stdout": 1027, "stderr": 1028}},
        {"type": "pause", "id": "c1"},
        {"type": "resume", "id": "c1"},
        {"type": "update", "id": "c1", "resources": {"memory": {"limit": 1048576}}},
        {"type": "stats", "id": "c1"},
        {"type": "processes", "id": "c1"},
        {"type": "state", "id": "c1"},
        {"type": "shutdown"},
    ]
    responses = [
        {"type": "hello", "version": 4},
        {"type": "ok"},
        {"type": "created", "pid": 42},
        {"type": "exec_started", "pid": 43},
        {"type": "stats", "stats": {"cpu": {"usage": {"total": 1.5e9}}, "pids": {"current": 3}}},
        {"type": "processes", "processes": [{"pid": 1, "ppid": 0, "uid": 0, "cmd": "/bin/sh"}]},
        {"type": "state", "status": "running", "pid": 42},
        {"type": "started", "warnings": ["process.apparmorProfile: ignored"]},
        {"type": "exited", "status": {"kind": "code", "value": 0}},
        {"type": "exited", "status": {"kind": "signal", "value": 9}},
        {"type": "error", "message": "no such container"},
    ]
    t = "protocol_frames"
    for i, body in enumerate(requests):
        write(t, "request-%02d-%s" % (i, body["type"]), frame({"id": i, "body": body}))
    for i, body in enumerate(responses):
        write(t, "response-%02d-%s" % (i, body["type"]), frame({"id": i, "body": body}))
    write(t, "stream", b"".join(frame({"id": i, "body": b}) for i, b in enumerate(requests[:4])))
    write(t, "bare-json", json.dumps({"id": 9, "body": requests[1]}).encode())

    t = "protocol_handshake"
    hello_req = frame({"id": 0, "body": {"type": "hello", "version": 4}})
    hello_resp = frame({"id": 0, "body": {"type": "hello", "version": 4}})
    write(t, "hello", hello_req)
    write(t, "hello-old-version", frame({"id": 5, "body": {"type": "hello", "version": 3}}))
    write(t, "hello-then-state", hello_resp + frame(
        {"id": 7, "body": {"type": "state", "status": "created", "pid": 1}}))
    write(t, "hello-then-error", hello_resp + frame(
        {"id": 7, "body": {"type": "error", "message": "boom"}}))
    write(t, "hello-then-wrong-id", hello_resp + frame({"id": 8, "body": {"type": "ok"}}))


# ---------------------------------------------------------------- images

SEP = b"\n%%\n"
H = lambda c: "sha256:" + c * 64


def image_seeds():
    t = "image_documents"
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": H("a"), "size": 321},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
             "digest": H("b"), "size": 1000},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar",
             "digest": H("c"), "size": 2000},
        ],
    }
    config = {
        "architecture": "amd64", "os": "linux",
        "config": {"User": "www:staff", "Env": ["PATH=/bin"], "Cmd": ["/bin/sh"],
                   "WorkingDir": "/srv", "Labels": {"a": "b"}},
        "rootfs": {"type": "layers", "diff_ids": [H("d"), H("e")]},
    }
    passwd = b"root:x:0:0:root:/root:/bin/sh\nwww:x:33:34::/var/www:/bin/false\n"
    group = b"root:x:0:\nwww:x:34:\nstaff:x:50:www,root\n"
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": H("1"),
             "size": 500, "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": H("2"),
             "size": 501, "platform": {"architecture": "amd64", "os": "linux"}},
        ],
    }
    docker_list = dict(index, mediaType="application/vnd.docker.distribution.manifest.list.v2+json")
    j = lambda o: json.dumps(o, indent=1).encode()
    write(t, "oci-manifest", SEP.join([b"application/vnd.oci.image.manifest.v1+json",
                                      j(manifest), j(config), passwd, group]))
    write(t, "manifest-without-media-type", SEP.join([b"", j(manifest), j(config)]))
    write(t, "oci-index", SEP.join([b"application/vnd.oci.image.index.v1+json", j(index)]))
    write(t, "docker-list", SEP.join([b"", j(docker_list)]))
    write(t, "digest", SEP.join([b"text/plain", H("f").encode()]))
    # Regression: layer sizes adding up past u64::MAX (ResolvedImage::total_size).
    huge = dict(manifest, layers=[dict(l, size=2**64 - 1) for l in manifest["layers"]])
    write(t, "huge-layer-sizes", SEP.join([b"", j(huge), j(config)]))

    t = "image_unpack"
    write(t, "basic", tar_bytes(basic_entries()))
    write(t, "basic.gz", gzip.compress(tar_bytes(basic_entries()), mtime=0))
    write(t, "whiteouts", tar_bytes(basic_entries()) + b"\n=LAYER=\n" + tar_bytes(whiteout_entries()))
    # One hostile entry per layer (a rejected entry ends its layer), four
    # layers per seed.
    layers = [tar_bytes([e]) for e in hostile_entries()]
    for k in range(0, len(layers), 4):
        write(t, "hostile-%d" % (k // 4), b"\n=LAYER=\n".join(layers[k:k + 4]))
    write(t, "pax", tar_bytes(pax_entries(), fmt=tarfile.PAX_FORMAT))


def entry(name, kind=tarfile.REGTYPE, data=b"", link="", mode=0o644, **kw):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.mtime = 1_700_000_000
    info.uname = info.gname = ""
    for k, v in kw.items():
        setattr(info, k, v)
    return info, data


def tar_bytes(entries, fmt=tarfile.GNU_FORMAT):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tf:
        for info, data in entries:
            tf.addfile(info, io.BytesIO(data) if info.size else None)
    data = out.getvalue()
    # Keep the two end-of-archive blocks, drop the record padding after them.
    end = len(data.rstrip(b"\0"))
    end = (end + 511) // 512 * 512 + 1024
    return data[:end]


def basic_entries():
    return [
        entry("etc/", tarfile.DIRTYPE, mode=0o755),
        entry("etc/passwd", data=b"root:x:0:0::/root:/bin/sh\nwww:x:33:34::/:/bin/false\n"),
        entry("etc/group", data=b"root:x:0:\nstaff:x:50:www\n"),
        entry("usr/bin/", tarfile.DIRTYPE, mode=0o555),
        entry("usr/bin/sh", data=b"#!fake", mode=0o755),
        entry("bin", tarfile.SYMTYPE, link="usr/bin"),
        entry("usr/bin/ash", tarfile.LNKTYPE, link="usr/bin/sh"),
        entry("run/fifo", tarfile.FIFOTYPE),
        entry("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3),
    ]


def whiteout_entries():
    return [
        entry("etc/.wh.group"),
        entry("usr/.wh..wh..opq"),
        entry("usr/bin/new", data=b"upper"),
        entry("dir/.wh.file"),
        entry(".wh.bin"),
    ]


def hostile_entries():
    return [
        entry("../escape", data=b"x"),
        entry("/absolute", data=b"x"),
        entry("up/victim", data=b"overwritten"),
        entry("abs/victim", data=b"overwritten"),
        entry("dotdot/outside/victim", data=b"overwritten"),
        entry("slash/tmp/x", data=b"x"),
        entry("evil", tarfile.SYMTYPE, link="../../.."),
        entry("evil/x", data=b"x"),
        entry("hl", tarfile.LNKTYPE, link="../outside/victim"),
        entry("hl2", tarfile.LNKTYPE, link="up/victim"),
        entry("up/.wh.victim"),
        entry("dotdot/.wh..wh..opq"),
        entry("up", tarfile.DIRTYPE, mode=0o777),
        entry("dir/file", tarfile.SYMTYPE, link="/etc/passwd"),
        entry("dir/file", data=b"replaces the symlink"),
    ]


def pax_entries():
    long_name = "deep/" + "d" * 120 + "/file"
    return [
        entry(long_name, data=b"long"),
        entry("x", data=b"xattr", pax_headers={"SCHILY.xattr.user.test": "v", "uid": "1000",
                                               "gid": "1000"}),
        entry("l", tarfile.SYMTYPE, link="t" * 150),
    ]


def main():
    if os.path.isdir(CORPUS):
        shutil.rmtree(CORPUS)
    blk_seeds()
    vsock_queue_seeds()
    fs_seeds()
    mmio_seeds()
    router_seeds()
    protocol_seeds()
    image_seeds()


if __name__ == "__main__":
    main()
