#!/usr/bin/env python3
"""Builds crib's test images from busybox-static and pushes them to a registry (API v2).

Everything is deterministic: fixed mtimes, owners and orders, gzip without a timestamp, a seeded
generator for the benchmark image's content, so the same script gives the same digests.
Python 3 standard library only, plus the zstd CLI for the zstd layer.

Usage: build_images.py --registry 127.0.0.1:5000 [--user U --password P] [--ca-file CA]
                       [--only a,b] [--big] [--critest [--shell-busybox PATH]]
--critest pushes the stand-ins of critest's images instead (critest_images.py).
"nginx:latest" (Debian's nginx binary, the host's or unpacked from its package, with the host's
libraries it loads) is built only when named.
Prints a JSON object to stdout: per image "repo:tag" its digest, media type and, for indexes,
its children; per image its layer digests.
"""
import argparse
import base64
import gzip
import hashlib
import http.client
import io
import json
import os
import random
import shutil
import ssl
import subprocess
import sys
import tarfile
import tempfile

BUSYBOX = "/bin/busybox"
# Debian's nginx, for the image built only when named: the host's, or the package's binary
# unpacked (not installed: installing it would start a web server on the host).
NGINX = "/usr/sbin/nginx"
NGINX_CACHE = "/var/cache/crib-critest/nginx"
MTIME = 1700000000

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ---- layers -------------------------------------------------------------------------------


class Layer:
    """A tar archive built entry by entry, with fixed metadata."""

    def __init__(self):
        self.buf = io.BytesIO()
        self.modes = {}  # file name -> mode, for the hard links to it
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)

    def _info(self, name, kind, mode):
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = mode
        info.mtime = MTIME
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    def dir(self, name, mode=0o755):
        self.tar.addfile(self._info(name, tarfile.DIRTYPE, mode))

    @staticmethod
    def _xattrs(info, xattrs):
        # PAX records as GNU tar and libarchive write them.
        for key, value in (xattrs or {}).items():
            info.pax_headers["SCHILY.xattr." + key] = value

    def file(self, name, data, mode=0o644, uid=0, gid=0, xattrs=None):
        info = self._info(name, tarfile.REGTYPE, mode)
        self.modes[name] = mode
        info.size = len(data)
        info.uid, info.gid = uid, gid
        self._xattrs(info, xattrs)
        self.tar.addfile(info, io.BytesIO(data))

    def symlink(self, name, target, xattrs=None):
        info = self._info(name, tarfile.SYMTYPE, 0o777)
        info.linkname = target
        self._xattrs(info, xattrs)
        self.tar.addfile(info)

    def hardlink(self, name, target):
        # A link's header carries its target's mode, as tar and docker write it: some
        # unpackers (containerd's) apply it to the shared inode.
        info = self._info(name, tarfile.LNKTYPE, self.modes.get(target, 0o644))
        info.linkname = target
        self.tar.addfile(info)

    def whiteout(self, path):
        parent, _, base = path.rpartition("/")
        self.file((parent + "/" if parent else "") + ".wh." + base, b"", mode=0o600)

    def opaque(self, directory):
        self.file(directory.rstrip("/") + "/.wh..wh..opq", b"", mode=0o600)

    def tar_bytes(self):
        self.tar.close()
        return self.buf.getvalue()


_compressed = {}


def compress(data, how):
    """Compressed layer bytes; a layer that several images share is compressed once."""
    key = (hashlib.sha256(data).digest(), how)
    if key not in _compressed:
        _compressed[key] = _compress(data, how)
    return _compressed[key]


def _compress(data, how):
    if how == "gzip":
        return gzip.compress(data, compresslevel=6, mtime=0)
    if how == "zstd":
        return subprocess.run(["zstd", "-q", "-c", "-3"], input=data, stdout=subprocess.PIPE,
                              check=True).stdout
    return data


def busybox_layer():
    layer = Layer()
    with open(BUSYBOX, "rb") as f:
        binary = f.read()
    applets = subprocess.run([BUSYBOX, "--list-full"], stdout=subprocess.PIPE, check=True,
                             text=True).stdout.split()
    dirs = {"bin", "sbin", "usr", "usr/bin", "usr/sbin", "tmp", "etc", "root"}
    for d in sorted(dirs):
        layer.dir(d, 0o1777 if d == "tmp" else 0o755)
    layer.file("bin/busybox", binary, mode=0o755)
    for applet in sorted(set(applets)):
        if applet == "bin/busybox":
            continue
        parent = applet.rpartition("/")[0]
        if parent and parent not in dirs:
            continue
        layer.symlink(applet, "/bin/busybox")
    layer.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"
               b"daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
               b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    layer.file("etc/group", b"root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\n")
    return layer.tar_bytes()


# ---- images -------------------------------------------------------------------------------


def image_config(diff_ids, arch="amd64", variant=None, user=None, cmd=("sh",), docker=False,
                 entrypoint=None, env=(), workdir=None, stop_signal=None):
    config = {
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"] + list(env),
    }
    if cmd is not None:
        config["Cmd"] = list(cmd)
    if entrypoint is not None:
        config["Entrypoint"] = list(entrypoint)
    if workdir is not None:
        config["WorkingDir"] = workdir
    if stop_signal is not None:
        config["StopSignal"] = stop_signal
    if user is not None:
        config["User"] = user
    doc = {
        "architecture": arch,
        "os": "linux",
        "created": "2023-11-14T22:13:20Z",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "crib test image"}
                    for _ in diff_ids],
    }
    if variant:
        doc["variant"] = variant
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


class Registry:
    def __init__(self, address, user=None, password=None, ca_file=None):
        self.address = address
        self.context = ssl.create_default_context(cafile=ca_file) if ca_file else None
        self.headers = {}
        if user is not None:
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            self.headers["Authorization"] = "Basic " + token

    def request(self, method, path, body=None, headers=None):
        if self.context is not None:
            conn = http.client.HTTPSConnection(self.address, timeout=120, context=self.context)
        else:
            conn = http.client.HTTPConnection(self.address, timeout=120)
        h = dict(self.headers)
        h.update(headers or {})
        conn.request(method, path, body=body, headers=h)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp.status, resp.headers, data

    def push_blob(self, repo, data):
        digest = sha256(data)
        status, _, _ = self.request("HEAD", f"/v2/{repo}/blobs/{digest}")
        if status == 200:
            return digest
        status, headers, body = self.request("POST", f"/v2/{repo}/blobs/uploads/")
        if status != 202:
            raise RuntimeError(f"start upload to {repo}: HTTP {status} {body!r}")
        location = headers["Location"]
        if location.startswith("http"):
            location = "/" + location.split("/", 3)[3]
        sep = "&" if "?" in location else "?"
        status, _, body = self.request(
            "PUT", f"{location}{sep}digest={digest}", body=data,
            headers={"Content-Type": "application/octet-stream",
                     "Content-Length": str(len(data))})
        if status != 201:
            raise RuntimeError(f"upload {digest} to {repo}: HTTP {status} {body!r}")
        return digest

    def push_manifest(self, repo, ref, data, media_type):
        status, _, body = self.request("PUT", f"/v2/{repo}/manifests/{ref}", body=data,
                                       headers={"Content-Type": media_type})
        if status != 201:
            raise RuntimeError(f"put manifest {repo}:{ref}: HTTP {status} {body!r}")
        return sha256(data)


def dumps(doc):
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


class Builder:
    def __init__(self, registry):
        self.registry = registry
        self.result = {}
        self._busybox = None

    def busybox_tar(self):
        if self._busybox is None:
            self._busybox = busybox_layer()
        return self._busybox

    def manifest(self, repo, layers, docker=False, arch="amd64", variant=None, user=None,
                 cmd=("sh",), annotations=None, **config_args):
        """Pushes the layers and config; returns (manifest bytes, media type, info).

        `layers` is a list of (tar bytes, compression)."""
        descriptors, diff_ids = [], []
        for tar_data, how in layers:
            blob = compress(tar_data, how)
            digest = self.registry.push_blob(repo, blob)
            if docker:
                media_type = DOCKER_LAYER_GZIP
            else:
                media_type = {"gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD,
                              "none": OCI_LAYER_TAR}[how]
            descriptors.append({"mediaType": media_type, "digest": digest, "size": len(blob)})
            diff_ids.append(sha256(tar_data))
        config = image_config(diff_ids, arch=arch, variant=variant, user=user, cmd=cmd,
                              **config_args)
        config_digest = self.registry.push_blob(repo, config)
        doc = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG if docker else OCI_CONFIG,
                       "digest": config_digest, "size": len(config)},
            "layers": descriptors,
        }
        if annotations:
            doc["annotations"] = annotations
        info = {"config": config_digest, "layers": [d["digest"] for d in descriptors],
                "layer_sizes": [d["size"] for d in descriptors], "diff_ids": diff_ids}
        return dumps(doc), doc["mediaType"], info

    def image(self, name, layers, **kwargs):
        repo, tag = name.split(":")
        data, media_type, info = self.manifest(repo, layers, **kwargs)
        digest = self.registry.push_manifest(repo, tag, data, media_type)
        info.update({"digest": digest, "media_type": media_type, "size": len(data)})
        self.result[name] = info

    def index(self, name, platforms, docker=False):
        """`platforms`: list of (platform dict, layers, kwargs)."""
        repo, tag = name.split(":")
        entries, children = [], {}
        for platform, layers, kwargs in platforms:
            data, media_type, info = self.manifest(repo, layers, docker=docker,
                                                   arch=platform["architecture"],
                                                   variant=platform.get("variant"), **kwargs)
            digest = sha256(data)
            self.registry.push_manifest(repo, digest, data, media_type)
            entries.append({"mediaType": media_type, "digest": digest, "size": len(data),
                            "platform": platform})
            key = "/".join([platform["os"], platform["architecture"]] +
                           ([platform["variant"]] if "variant" in platform else []))
            info.update({"digest": digest, "media_type": media_type, "size": len(data)})
            children[key] = info
        media_type = DOCKER_LIST if docker else OCI_INDEX
        doc = {"schemaVersion": 2, "mediaType": media_type, "manifests": entries}
        data = dumps(doc)
        digest = self.registry.push_manifest(repo, tag, data, media_type)
        self.result[name] = {"digest": digest, "media_type": media_type, "size": len(data),
                             "manifests": children}


def text_layer(files):
    layer = Layer()
    for name, content in files:
        layer.file(name, content)
    return layer.tar_bytes()


def changes_layer():
    """Files, directories, hardlinks and symlinks the whiteout layer then changes."""
    layer = Layer()
    layer.dir("data")
    layer.file("data/keep", b"kept\n", xattrs={"user.crib-test": "on a file"})
    layer.file("data/remove-me", b"removed by the next layer\n")
    layer.file("data/replace-me", b"old content\n")
    layer.dir("data/opaque")
    layer.file("data/opaque/old-1", b"hidden by the opaque marker\n")
    layer.file("data/opaque/old-2", b"hidden by the opaque marker\n")
    layer.dir("data/gone")
    layer.file("data/gone/inside", b"the whole directory is whited out\n")
    layer.file("data/original", b"hardlinked content\n", mode=0o640)
    layer.hardlink("data/hardlink", "data/original")
    # user.* is refused on symlinks by the kernel (skipped); trusted.* is kept.
    layer.symlink("data/symlink", "keep", xattrs={"trusted.crib-test": "on a symlink",
                                                  "user.crib-test": "refused on a symlink"})
    layer.symlink("data/abs-symlink", "/bin/busybox")
    layer.file("data/setuid", b"#!/bin/sh\n", mode=0o4755)
    layer.file("data/owned", b"owned by 1000:1000\n", uid=1000, gid=1000)
    return layer.tar_bytes()


def whiteout_layer():
    layer = Layer()
    layer.dir("data")
    layer.whiteout("data/remove-me")
    layer.whiteout("data/gone")
    layer.file("data/replace-me", b"new content\n")
    layer.dir("data/opaque")
    layer.opaque("data/opaque")
    layer.file("data/opaque/new", b"the only file left here\n")
    layer.file("data/added", b"added by the upper layer\n")
    layer.hardlink("data/added-link", "data/added")
    return layer.tar_bytes()


def zstd_layer():
    layer = Layer()
    layer.dir("zstd")
    layer.file("zstd/hello", b"from a zstd layer\n" * 100)
    return layer.tar_bytes()


def plain_tar_layer():
    layer = Layer()
    layer.dir("plain")
    layer.file("plain/hello", b"from an uncompressed layer\n")
    return layer.tar_bytes()


def evil_layer(kind):
    layer = Layer()
    if kind == "traversal":
        layer.file("../escaped-by-dotdot", b"must never be written\n")
    elif kind == "absolute":
        layer.file("/tmp/escaped-by-absolute-path", b"must never be written\n")
    elif kind == "symlink":
        layer.symlink("escape", "/tmp")
        layer.file("escape/escaped-through-symlink", b"must never be written\n")
    return layer.tar_bytes()


def groups_layer():
    """A user with supplementary groups in the image's own /etc/group."""
    layer = Layer()
    layer.dir("etc")
    layer.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"
               b"app:x:1000:1000:app:/home/app:/bin/sh\n"
               b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    layer.file("etc/group", b"root:x:0:\napp:x:1000:\nstaff:x:50:app\nmedia:x:60:other,app\n"
               b"audio:x:63:other\nnogroup:x:65534:\n")
    layer.dir("home")
    layer.dir("home/app")
    return layer.tar_bytes()


def evil_etc_layer():
    """/etc files that are symlinks out of the image: mounts over them must stay inside."""
    layer = Layer()
    layer.dir("etc")
    layer.symlink("etc/hosts", "/tmp/crib-evil-etc/hosts")
    layer.symlink("etc/resolv.conf", "../../../../../../tmp/crib-evil-etc/resolv.conf")
    layer.symlink("etc/hostname", "/tmp/crib-evil-etc/hostname")
    return layer.tar_bytes()


def many_layers(count):
    """`count` tiny layers: an overlay whose lower directories do not fit in one page."""
    layers = []
    for n in range(count):
        layer = Layer()
        layer.dir("many")
        layer.file(f"many/layer{n:03d}", f"layer {n}\n".encode())
        layers.append((layer.tar_bytes(), "gzip"))
    return layers


def random_layer(megabytes, seed):
    """One file of `megabytes` MiB that does not compress (a seeded generator's bytes)."""
    rng = random.Random(seed)
    layer = Layer()
    layer.file("random.bin", rng.randbytes(megabytes * 1024 * 1024))
    return layer.tar_bytes()


def big_layers(total_mb, count):
    """Deterministic content, half incompressible and half text-like, in `count` layers."""
    rng = random.Random(20231114)
    words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
             for _ in range(2000)]
    per_layer = total_mb * 1024 * 1024 // count
    layers = []
    for n in range(count):
        layer = Layer()
        layer.dir(f"big{n}")
        size, i = 0, 0
        while size < per_layer:
            if i % 2 == 0:
                content = rng.randbytes(1024 * 1024)
            else:
                content = b" ".join(rng.choices(words, k=180000))[:1024 * 1024]
            layer.file(f"big{n}/file{i:04d}", content)
            size += len(content)
            i += 1
        layers.append((layer.tar_bytes(), "gzip"))
    return layers


def shared_libraries(binary):
    """The absolute paths of the shared libraries and the loader that `binary` needs (ldd)."""
    out = subprocess.run(["ldd", binary], stdout=subprocess.PIPE, check=True, text=True).stdout
    paths = []
    for line in out.splitlines():
        for word in line.split():
            if word.startswith("/"):
                paths.append(word)
                break
    return paths


NGINX_CONF = b"""user www-data;
worker_processes 2;
daemon off;
pid /run/nginx.pid;
error_log stderr notice;
events {
    worker_connections 64;
}
http {
    access_log off;
    server {
        listen 80;
        root /var/www/html;
        index index.html;
    }
}
"""


def unpacked_package(package, cache, member):
    """`member` (a path inside Debian's package `package`), unpacked once below `cache` from the
    package `apt-get download` fetches (running `apt-get update` first if it must), not
    installed. Returns (path, None), or (None, what apt said)."""
    path = os.path.join(cache, member)
    if os.path.exists(path):
        return path, None
    os.makedirs(cache, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        def download():
            return subprocess.run(["apt-get", "download", package], cwd=tmp,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

        out = download()
        if out.returncode != 0:  # no package lists yet on a fresh machine
            subprocess.run(["apt-get", "update", "-qq"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            out = download()
        debs = [f for f in os.listdir(tmp) if f.endswith(".deb")]
        if out.returncode != 0 or not debs:
            return None, (f"apt-get download {package} failed ({out.returncode}): "
                          f"{out.stdout.strip()[-300:]}")
        unpacked = os.path.join(tmp, "x")
        subprocess.run(["dpkg-deb", "-x", os.path.join(tmp, debs[0]), unpacked], check=True)
        for entry in os.listdir(unpacked):
            shutil.rmtree(os.path.join(cache, entry), ignore_errors=True)
            os.rename(os.path.join(unpacked, entry), os.path.join(cache, entry))
    return path, None


def nginx_binary():
    """/usr/sbin/nginx, or the one of Debian's nginx package unpacked in NGINX_CACHE; its
    libraries (libssl, libpcre2, zlib, libcrypt) are the host's."""
    if os.access(NGINX, os.X_OK):
        return NGINX
    path, error = unpacked_package("nginx", NGINX_CACHE, "usr/sbin/nginx")
    if path is None:
        raise SystemExit(error)
    return path


def nginx_layer():
    """Debian's nginx with the libraries it loads, a configuration that serves one page on port
    80 from workers running as www-data (33), and the directories it writes to."""
    layer = Layer()
    nginx = nginx_binary()
    libraries = shared_libraries(nginx)
    dirs = {"etc/nginx", "var", "var/log", "var/log/nginx", "var/lib", "var/lib/nginx", "var/www",
            "var/www/html", "run"}
    for path in libraries:
        parts = path.strip("/").split("/")[:-1]
        dirs.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    for d in sorted(dirs):
        layer.dir(d)
    for path in sorted(libraries):
        with open(path, "rb") as f:
            layer.file(path.lstrip("/"), f.read(), mode=0o755)
    with open(nginx, "rb") as f:
        layer.file("usr/sbin/nginx", f.read(), mode=0o755)
    layer.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"
               b"www-data:x:33:33:www-data:/var/www:/bin/false\n"
               b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    layer.file("etc/group", b"root:x:0:\nwww-data:x:33:\nnogroup:x:65534:\n")
    layer.file("etc/nsswitch.conf", b"passwd: files\ngroup: files\n")
    layer.file("etc/nginx/nginx.conf", NGINX_CONF)
    layer.file("var/www/html/index.html", b"served by nginx in a user namespace\n")
    return layer.tar_bytes()


def build(builder, only, big):
    def want(name):
        return only is None or name in only

    busybox = (builder.busybox_tar(), "gzip")
    if want("busybox:latest"):
        builder.image("busybox:latest", [busybox])
    if want("layers:latest"):
        builder.image("layers:latest", [busybox, (changes_layer(), "gzip"),
                                        (whiteout_layer(), "gzip"), (zstd_layer(), "zstd"),
                                        (plain_tar_layer(), "none")])
    if want("zstd:latest"):
        builder.image("zstd:latest", [busybox, (zstd_layer(), "zstd")])
    if want("user:latest"):
        builder.image("user:latest", [busybox], user="1000:1000", cmd=("id",))
    if want("username:latest"):
        builder.image("username:latest", [busybox], user="daemon", cmd=("id",))
    arm_layer = (text_layer([("etc/arch", b"arm64 v8\n")]), "gzip")
    arm7_layer = (text_layer([("etc/arch", b"arm v7\n")]), "gzip")
    if want("multiarch:latest"):
        builder.index("multiarch:latest", [
            ({"os": "linux", "architecture": "arm64", "variant": "v8"}, [arm_layer], {}),
            ({"os": "linux", "architecture": "amd64"}, [busybox], {}),
            ({"os": "linux", "architecture": "arm", "variant": "v7"}, [arm7_layer], {}),
        ])
    if want("armonly:latest"):
        builder.index("armonly:latest", [
            ({"os": "linux", "architecture": "arm64", "variant": "v8"}, [arm_layer], {}),
        ])
    if want("dockerlist:latest"):
        builder.index("dockerlist:latest", [
            ({"os": "linux", "architecture": "arm64", "variant": "v8"}, [arm_layer], {}),
            ({"os": "linux", "architecture": "amd64"}, [busybox], {}),
        ], docker=True)
    if want("docker:latest"):
        builder.image("docker:latest", [busybox], docker=True)
    if want("app:latest"):
        builder.image("app:latest", [busybox], entrypoint=("/bin/sh", "-c"),
                      cmd=("echo from the image cmd",),
                      env=("FROM_IMAGE=yes", "OVERRIDE=image"), workdir="/srv",
                      stop_signal="SIGUSR1")
    if want("groups:latest"):
        builder.image("groups:latest", [busybox, (groups_layer(), "gzip")], user="app",
                      cmd=("id",))
    if want("nocmd:latest"):
        builder.image("nocmd:latest", [busybox], cmd=None)
    if want("evil-etc:latest"):
        builder.image("evil-etc:latest", [busybox, (evil_etc_layer(), "gzip")])
    if want("tenmb:latest"):
        builder.image("tenmb:latest", [busybox, (random_layer(10, 1), "gzip")])
    if want("manylayers:latest"):
        builder.image("manylayers:latest", [busybox] + many_layers(70))
    for kind in ("traversal", "absolute", "symlink"):
        if want(f"evil-{kind}:latest"):
            builder.image(f"evil-{kind}:latest", [busybox, (evil_layer(kind), "gzip")])
    if big and want("big:latest"):
        builder.image("big:latest", [busybox] + big_layers(100, 5))
    # The host's nginx (scripts/install-deps.sh installs it): only when named.
    if only is not None and "nginx:latest" in only:
        builder.image("nginx:latest", [busybox, (nginx_layer(), "gzip")],
                      entrypoint=(NGINX,), cmd=None, stop_signal="SIGQUIT")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", required=True, help="host:port, plain HTTP by default")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--ca-file", help="HTTPS, verified with this CA")
    parser.add_argument("--only", help="comma-separated repo:tag names")
    parser.add_argument("--big", action="store_true", help="also the ~100 MB benchmark image")
    parser.add_argument("--critest", action="store_true",
                        help="the stand-ins of critest's images, under their upstream paths")
    parser.add_argument("--shell-busybox",
                        help="with --critest: a busybox without FEATURE_SH_STANDALONE for /bin/sh")
    args = parser.parse_args()
    builder = Builder(Registry(args.registry, args.user, args.password, args.ca_file))
    only = set(args.only.split(",")) if args.only else None
    if args.critest:
        import critest_images  # beside this file
        critest_images.build(builder, only, Layer, args.shell_busybox)
    else:
        build(builder, only, args.big or (only is not None and "big:latest" in only))
    json.dump(builder.result, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
