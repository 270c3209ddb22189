#!/usr/bin/env python3
"""Write a one-layer OCI image archive (oci-layout tar) without Docker or a registry.

The archive is what `ctr -n k8s.io images import` loads into containerd. Every image gets a
minimal base: /etc/passwd and /etc/group with root and a non-root user 65532 "nonroot", the host's
CA bundle at /etc/ssl/certs/ca-certificates.crt, and /tmp.

  mkoci.py binary  OUT REF BINARY [ARG...]   BINARY (plus the shared libraries ldd lists) at
                                             /usr/local/bin/<name>; entrypoint [it, ARG...]; user 65532
  mkoci.py busybox OUT REF [--entrypoint JSON] [--cmd JSON] [--user U] [--text PATH=CONTENT]...
                                             the host's busybox with all its applets in /bin
  mkoci.py pause   OUT REF                   busybox `sleep` as the pod sandbox process
  mkoci.py normalize REF                     print REF the way containerd names it
"""
import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile

NONROOT = 65532
PASSWD = (b"root:x:0:0:root:/root:/bin/sh\n"
          b"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
          b"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")
GROUP = b"root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def normalize(ref):
    """docker.io/library/busybox:latest style name, as containerd's CRI resolves it."""
    name, _, digest = ref.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" not in last and not digest:
        name += ":latest"
    first = name.split("/", 1)[0]
    if "/" not in name or not ("." in first or ":" in first or first == "localhost"):
        name = "docker.io/" + ("library/" + name if "/" not in name else name)
    return name + ("@" + digest if digest else "")


class Layer:
    """An uncompressed tar layer with deterministic metadata."""

    def __init__(self):
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)
        self.dirs = set()

    def _info(self, path, kind, mode, uid=0):
        ti = tarfile.TarInfo(path.lstrip("/"))
        ti.type, ti.mode, ti.mtime, ti.uid, ti.gid = kind, mode, 0, uid, uid
        return ti

    def dir(self, path, mode=0o755, uid=0):
        path = path.strip("/")
        if not path or path in self.dirs:
            return
        self.dir(os.path.dirname(path))
        self.dirs.add(path)
        self.tar.addfile(self._info(path, tarfile.DIRTYPE, mode, uid))

    def data(self, path, content, mode=0o644):
        self.dir(os.path.dirname(path.strip("/")))
        ti = self._info(path, tarfile.REGTYPE, mode)
        ti.size = len(content)
        self.tar.addfile(ti, io.BytesIO(content))

    def file(self, src, dest, mode=None):
        with open(src, "rb") as f:  # follows symlinks: the image gets the real content
            self.data(dest, f.read(), mode if mode is not None else os.stat(src).st_mode & 0o777)

    def symlink(self, path, target):
        self.dir(os.path.dirname(path.strip("/")))
        ti = self._info(path, tarfile.SYMTYPE, 0o777)
        ti.linkname = target
        self.tar.addfile(ti)

    def base(self):
        for d in ("bin", "dev", "etc", "proc", "sys", "usr/local/bin", "var", "root"):
            self.dir(d)
        self.dir("tmp", 0o1777)
        self.dir("home/nonroot", 0o755, NONROOT)
        self.data("etc/passwd", PASSWD)
        self.data("etc/group", GROUP)
        if os.path.exists(CA_BUNDLE):
            self.file(CA_BUNDLE, CA_BUNDLE, 0o644)

    def with_libs(self, binary, dest):
        """Add BINARY at DEST plus every shared library `ldd` reports, at the same paths."""
        self.file(binary, dest, 0o755)
        out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
        for line in out.splitlines():
            parts = line.split()
            path = parts[2] if "=>" in parts and len(parts) > 2 else parts[0] if parts else ""
            if path.startswith("/"):
                self.file(path, path, 0o755)

    def bytes(self):
        self.tar.close()
        return self.buf.getvalue()


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def write_archive(out, ref, layer, entrypoint=None, cmd=None, user="", env=None, workdir="/"):
    ref = normalize(ref)
    blob = layer.bytes()
    config = {
        "architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
        "config": {"Entrypoint": entrypoint, "Cmd": cmd, "User": user, "WorkingDir": workdir,
                   "Env": env or ["PATH=/usr/local/bin:/usr/bin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [sha(blob)]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "mkoci.py"}],
    }
    config_b = json.dumps(config, separators=(",", ":")).encode()
    manifest = {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha(config_b), "size": len(config_b)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": sha(blob), "size": len(blob)}],
    }
    manifest_b = json.dumps(manifest, separators=(",", ":")).encode()
    index = {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": sha(manifest_b), "size": len(manifest_b),
                       "platform": {"architecture": "amd64", "os": "linux"},
                       "annotations": {"io.containerd.image.name": ref,
                                       "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[-1]}}],
    }
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".tmp"
    with tarfile.open(tmp, "w") as t:
        def add(name, b):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = len(b), 0o644
            t.addfile(ti, io.BytesIO(b))
        add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add("index.json", json.dumps(index).encode())
        for b in (blob, config_b, manifest_b):
            add("blobs/sha256/" + hashlib.sha256(b).hexdigest(), b)
    os.replace(tmp, out)
    print(f"{out}: {ref} ({len(blob) // 1024} KiB)", file=sys.stderr)


def busybox_layer():
    busybox = shutil.which("busybox") or sys.exit("busybox not found (apt-get install busybox-static)")
    layer = Layer()
    layer.base()
    layer.with_libs(busybox, "/bin/busybox")
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout
    for applet in sorted(set(applets.split()) - {"busybox"}):
        layer.symlink("bin/" + applet, "busybox")
    return layer


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="kind", required=True)
    b = sub.add_parser("binary")
    b.add_argument("out"); b.add_argument("ref"); b.add_argument("binary")
    b.add_argument("args", nargs=argparse.REMAINDER)
    bb = sub.add_parser("busybox")
    bb.add_argument("out"); bb.add_argument("ref")
    bb.add_argument("--entrypoint", type=json.loads)
    bb.add_argument("--cmd", type=json.loads, default=["/bin/sh"])
    bb.add_argument("--user", default="")
    bb.add_argument("--text", action="append", default=[], metavar="PATH=CONTENT")
    pa = sub.add_parser("pause")
    pa.add_argument("out"); pa.add_argument("ref")
    n = sub.add_parser("normalize")
    n.add_argument("ref")
    a = p.parse_args()

    if a.kind == "normalize":
        print(normalize(a.ref))
    elif a.kind == "binary":
        layer = Layer()
        layer.base()
        dest = "/usr/local/bin/" + os.path.basename(a.binary)
        layer.with_libs(a.binary, dest)
        write_archive(a.out, a.ref, layer, entrypoint=[dest] + a.args, user=str(NONROOT))
    elif a.kind == "busybox":
        layer = busybox_layer()
        for item in a.text:
            path, _, content = item.partition("=")
            layer.data(path, content.encode())
        write_archive(a.out, a.ref, layer, entrypoint=a.entrypoint, cmd=a.cmd, user=a.user)
    elif a.kind == "pause":
        # The sandbox only holds the pod's namespaces; containerd stops it with SIGKILL.
        layer = Layer()
        layer.base()
        layer.with_libs(shutil.which("busybox") or sys.exit("busybox not found"), "/bin/busybox")
        layer.symlink("bin/sleep", "busybox")
        write_archive(a.out, a.ref, layer, entrypoint=["/bin/sleep", "2147483647"])


if __name__ == "__main__":
    main()
