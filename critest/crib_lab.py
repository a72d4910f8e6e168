"""A private crib lab for end-to-end tests: a cribd of its own, a test registry, the client tools.

Python 3 standard library only. Used by critest/run and by the end-to-end tests under tests/e2e
(which put this folder on sys.path). Everything it starts has names of its own (socket, root and
state dirs, bridge, nftables table, a /16 pod range picked at random), so several labs can run
on one machine at once, and everything it starts is undone by stop()/close(), also on failure.

API:

    tools_dir() -> str | None
        The directory holding crictl, critest and kubelet v1.26.1, unpacked by
        <repo>/../shared/k8s-node-tools/unpack; None when that tool is absent.
    free_port() -> int
        A TCP port on 127.0.0.1 that nothing listens on right now.
    crictl(socket, *args, check=True, timeout=120) -> subprocess.CompletedProcess
        Runs crictl against the socket (runtime and image endpoint), text output captured;
        raises LabError with the output when it fails and `check` is true.
    class Registry(workdir=None)
        Debian's docker-registry on 127.0.0.1:<free port> with its own storage in `workdir`
        (made if missing and left there), or in a temp dir that stop() removes.
        .start() (waits until /v2/ answers), .host ("127.0.0.1:PORT"), .stop(); a context
        manager: `with Registry() as reg:` starts it and stops it on the way out.
    push_test_images(host, only=None, critest=False, extra_args=(), shell=True) -> dict
        Builds images with tests/images/build_images.py and pushes them to `host`; returns its
        JSON (per "repo:tag": digest, media type, layers). critest=True builds the stand-ins of
        the images critest v1.26.1 pulls instead, under their upstream repository paths, with
        shell_busybox() as their /bin/sh when there is one and `shell` is true.
    oci_runtime_path(handler) -> str
        The executable of Debian's runc or crun ("runc", "crun") as this machine needs it (crun
        through etc/crun-without-unified on a hybrid machine whose v2 tree has controllers).
    runtime_handlers_toml() -> str
        [runtimes.runc] and [runtimes.crun] tables for a Cribd's extra_toml.
    shell_busybox() -> str | None
        A busybox built without FEATURE_SH_STANDALONE (Debian's `busybox` package, which
        conflicts with the installed busybox-static, so it is fetched with `apt-get download`,
        after an `apt-get update` if the package lists lack it, and unpacked once into
        ${XDG_CACHE_HOME:-/var/cache}/crib-critest); None, with the reason on stderr, when apt
        cannot fetch it.
    class Cribd(workdir, mirrors={}, extra_toml="", binary=<repo>/build/src/cribd/cribd,
                log_level="info", keep_workdir=False)
        A cribd with its socket, root_dir and state_dir under `workdir` (made if missing) and
        a bridge, nftables table and pod CIDR of its own. `mirrors` maps a registry host to a
        list of mirror endpoints ({"docker.io": ["127.0.0.1:5000"]}). `extra_toml` is appended
        to the config file (top-level keys first, or whole [section]s that the lab does not
        write: stream). Attributes: .socket, .endpoint ("unix://..."), .root_dir,
        .state_dir, .config_path, .log_path, .bridge, .nft_table, .pod_cidr.
        .start(timeout=60) spawns it and waits until the socket answers `crictl version`;
        calling it again after stop()/kill() reuses the same root and state.
        .stop(timeout=30) sends SIGTERM and waits; .kill() sends SIGKILL and waits.
        .crictl(*args, **kw) runs crictl against it.
        .remove_everything() removes every pod and container through crictl (`rmp -fa`,
        `rm -fa`) so that no mount, netns, veth or cgroup stays behind.
        .close() = remove_everything() (a cribd that was stopped or killed is started again
        for it: it recovers its state first), stop(), then removes the bridge and the nftables
        table it made and the work dir (unless keep_workdir, or when removal failed: then it
        stays for its log and the error is raised).
        A context manager: `with Cribd(dir) as c:` starts it and closes it on the way out.
        .log_tail(lines=40) returns the end of its log (for error messages).

Example:

    with Registry() as reg:
        push_test_images(reg.host, only=["busybox:latest"])
        with Cribd(tempfile.mkdtemp(prefix="crib-e2e-"),
                   mirrors={"docker.io": [reg.host]}) as cribd:
            cribd.crictl("pull", "busybox:latest")
"""
import json
import os
import random
import re
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CRIBD = os.path.join(REPO, "build", "src", "cribd", "cribd")
BUILD_IMAGES = os.path.join(REPO, "tests", "images", "build_images.py")
UNPACK = os.path.join(os.path.dirname(REPO), "shared", "k8s-node-tools", "unpack")
REGISTRY_BINARY = "/usr/bin/docker-registry"


class LabError(RuntimeError):
    pass


def tools_dir():
    """The directory with crictl, critest and kubelet, or None when the tools are absent."""
    if not os.access(UNPACK, os.X_OK):
        return None
    out = subprocess.run([UNPACK], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if out.returncode != 0:
        raise LabError(f"{UNPACK} failed ({out.returncode}): {out.stderr.strip()}")
    path = out.stdout.strip().splitlines()[-1]
    return path if os.path.isdir(path) else None


def tool(name):
    directory = tools_dir()
    if directory is None:
        raise LabError(f"{UNPACK} is missing: the k8s node tools v1.26.1 are needed for {name}")
    return os.path.join(directory, name)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, check, timeout, interval=0.05, failed=None):
    """Polls check() until it returns a true value; raises LabError after `timeout` seconds.

    `failed()`, when given, returns an error text once waiting is pointless (a process died)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if failed is not None:
            reason = failed()
            if reason:
                raise LabError(f"{what}: {reason}")
        if time.monotonic() > deadline:
            raise LabError(f"{what}: not within {timeout:g} s")
        time.sleep(interval)


def crictl(sock, *args, check=True, timeout=120):
    endpoint = sock if sock.startswith("unix://") else "unix://" + sock
    argv = [tool("crictl"), "--runtime-endpoint", endpoint, "--image-endpoint", endpoint,
            "--timeout", "60s"] + [str(a) for a in args]
    out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         timeout=timeout)
    if check and out.returncode != 0:
        raise LabError(f"crictl {' '.join(map(str, args))} exited with {out.returncode}: "
                       f"{out.stderr.strip() or out.stdout.strip()}")
    return out


def _tail(path, lines):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def _reap(proc, timeout):
    try:
        proc.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


class Registry:
    """docker-registry on a free loopback port, storage in its own directory."""

    def __init__(self, workdir=None):
        self._own_dir = workdir is None
        self.dir = workdir or tempfile.mkdtemp(prefix="crib-registry-")
        os.makedirs(self.dir, exist_ok=True)
        self.proc = None
        self.host = None
        self.log_path = os.path.join(self.dir, "registry.log")

    def _probe(self):
        try:
            with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=2) as resp:
                return resp.status == 200
        except urllib.error.HTTPError as e:
            return e.code == 401
        except OSError:
            return False

    def start(self):
        for _ in range(5):
            port = free_port()
            self.host = f"127.0.0.1:{port}"
            config = os.path.join(self.dir, "config.yml")
            with open(config, "w") as f:
                f.write("version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n"
                        f"storage:\n  filesystem:\n    rootdirectory: {self.dir}/data\n"
                        "  delete:\n    enabled: true\n"
                        f"http:\n  addr: {self.host}\n")
            log = open(self.log_path, "ab")
            self.proc = subprocess.Popen([REGISTRY_BINARY, "serve", config],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True)
            log.close()
            try:
                wait_for(f"docker-registry on {self.host}", self._probe, 20,
                         failed=lambda: self.proc.poll() is not None and "exited")
                return self
            except LabError:
                if self.proc.poll() is None:
                    self.stop()
                    raise LabError(f"docker-registry on {self.host} did not answer /v2/: "
                                   f"{_tail(self.log_path, 20)}")
                self.proc = None  # the port was taken meanwhile: another one
        raise LabError(f"docker-registry did not start: {_tail(self.log_path, 20)}")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            if not _reap(self.proc, 10):
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()


def shell_busybox():
    cache = os.path.join(os.environ.get("XDG_CACHE_HOME") or "/var/cache", "crib-critest",
                         "busybox")
    path, error = _build_images().unpacked_package("busybox", cache, "bin/busybox")
    if path is None:
        print(f"crib_lab: {error}; /bin/sh of critest's images stays busybox-static's "
              "standalone shell", file=sys.stderr)
    return path


def _build_images():
    """tests/images/build_images.py as a module (it is also run as a program)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("build_images", BUILD_IMAGES)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def push_test_images(host, only=None, critest=False, extra_args=(), shell=True):
    argv = [sys.executable, BUILD_IMAGES, "--registry", host]
    if critest:
        argv.append("--critest")
        shell = shell_busybox() if shell else None
        if shell:
            argv += ["--shell-busybox", shell]
    if only:
        argv += ["--only", ",".join(only)]
    argv += list(extra_args)
    out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if out.returncode != 0:
        raise LabError(f"build_images.py exited with {out.returncode}: {out.stderr.strip()}")
    return json.loads(out.stdout)


def oci_runtime_path(handler):
    """The executable that runs OCI runtime `handler` ("runc" or "crun") on this machine: crun
    1.8 refuses a hybrid cgroup machine whose v2 tree has controllers (in cgroup.controllers: also
    inside a cgroup namespace, where the root enables none), and there runs through
    etc/crun-without-unified, which hides that tree from it."""
    if handler == "runc":
        return "/usr/sbin/runc"
    try:
        with open("/sys/fs/cgroup/unified/cgroup.controllers") as f:
            controllers = f.read().strip()
    except OSError:
        controllers = ""
    if controllers and not os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return os.path.join(REPO, "etc", "crun-without-unified")
    return "/usr/bin/crun"


def runtime_handlers_toml():
    """[runtimes] tables for Debian's runc and crun, handlers "runc" and "crun"."""
    return "".join(f"[runtimes.{h}]\npath = {_toml_string(oci_runtime_path(h))}\n"
                   for h in ("runc", "crun"))


def _suffix():
    return "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(6))


def _toml_string(value):
    return json.dumps(str(value))


class Cribd:
    """A private cribd: its own socket, root, state, bridge, nftables table and pod range."""

    def __init__(self, workdir, mirrors=None, extra_toml="", binary=DEFAULT_CRIBD,
                 log_level="info", keep_workdir=False):
        self._keep_dir = keep_workdir
        self.workdir = os.path.abspath(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.binary = binary
        suffix = _suffix()
        self.socket = os.path.join(self.workdir, "crib.sock")
        self.endpoint = "unix://" + self.socket
        self.root_dir = os.path.join(self.workdir, "root")
        self.state_dir = os.path.join(self.workdir, "state")
        self.config_path = os.path.join(self.workdir, "config.toml")
        self.log_path = os.path.join(self.workdir, "cribd.log")
        self.bridge = "crib" + suffix  # 10 characters, the kernel allows 15
        self.nft_table = "crib_" + suffix
        self.pod_cidr = _unused_cidr()
        self.proc = None
        self._closed = False
        mirror_items = ", ".join(
            f"{_toml_string(h)} = [{', '.join(_toml_string(e) for e in endpoints)}]"
            for h, endpoints in (mirrors or {}).items())
        top, sections = _split_toml(extra_toml)
        # Pods that name no cgroup parent go below a parent of this lab's own (removed by
        # close), not crib's shared /crib; with the systemd driver they go to the lab's systemd.
        self.cgroup_parent = None
        if not re.search(r'^\s*cgroup_(driver\s*=\s*"systemd"|parent\s*=)', top, re.M):
            self.cgroup_parent = "/crib-lab-" + suffix
            top += f"\ncgroup_parent = {_toml_string(self.cgroup_parent)}\n"
        with open(self.config_path, "w") as f:
            f.write(f"# cribd of a crib lab in {self.workdir}\n"
                    f"socket = {_toml_string(self.socket)}\n"
                    f"root_dir = {_toml_string(self.root_dir)}\n"
                    f"state_dir = {_toml_string(self.state_dir)}\n"
                    f"log_level = {_toml_string(log_level)}\n"
                    f"{top}\n"
                    "[network]\n"
                    f"bridge = {_toml_string(self.bridge)}\n"
                    f"nft_table = {_toml_string(self.nft_table)}\n"
                    f"pod_cidr = {_toml_string(self.pod_cidr)}\n"
                    f"{sections.pop('network', '')}\n"
                    "[registry]\n"
                    f"mirrors = {{ {mirror_items} }}\n"
                    f"{sections.pop('registry', '')}\n")
            for name, body in sections.items():
                f.write(f"[{name}]\n{body}\n")

    # ---- process ----------------------------------------------------------------------------

    def _answers(self):
        if not os.path.exists(self.socket):
            return False
        try:
            return crictl(self.socket, "version", check=False, timeout=10).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def _died(self):
        if self.proc is not None and self.proc.poll() is not None:
            return f"cribd exited with {self.proc.returncode}: {self.log_tail(20)}"
        return None

    def start(self, timeout=60):
        if self.proc is not None and self.proc.poll() is None:
            return self
        if not os.access(self.binary, os.X_OK):
            raise LabError(f"no cribd at {self.binary}: build the project first")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.binary, "--config", self.config_path],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     start_new_session=True)
        log.close()
        self._closed = False
        wait_for(f"cribd on {self.socket}", self._answers, timeout, interval=0.1,
                 failed=self._died)
        return self

    def stop(self, timeout=30):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            if not _reap(self.proc, timeout):
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines=40):
        return _tail(self.log_path, lines)

    # ---- clients ----------------------------------------------------------------------------

    def crictl(self, *args, **kwargs):
        return crictl(self.socket, *args, **kwargs)

    def remove_everything(self):
        """Removes every pod and container (and with them mounts, netns, veths, cgroups)."""
        errors = []
        for args in (("rmp", "-fa"), ("rm", "-fa")):
            out = self.crictl(*args, check=False, timeout=300)
            if out.returncode != 0:
                errors.append(f"crictl {' '.join(args)}: {out.stderr.strip()}")
        left = self.crictl("pods", "-q", check=False).stdout.split()
        left += self.crictl("ps", "-aq", check=False).stdout.split()
        if left:
            errors.append(f"still there after removal: {' '.join(left)}")
        if errors:
            raise LabError("; ".join(errors))

    def close(self):
        """Removes pods and containers, stops cribd and removes what it left on the machine."""
        if self._closed:
            return
        self._closed = True
        error = None
        try:
            if not self.running() and os.path.exists(self.root_dir):
                self.start()  # what a stopped or killed cribd left: its recovery knows it
            if self.running():
                self.remove_everything()
        except (LabError, subprocess.TimeoutExpired) as e:
            error = e
        finally:
            self.stop()
            subprocess.run(["ip", "link", "delete", self.bridge], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            subprocess.run(["nft", "delete", "table", "inet", self.nft_table],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if self.cgroup_parent:
                _remove_cgroup(self.cgroup_parent)
            # On a failure the directory stays for its log.
            if not self._keep_dir and error is None:
                _remove_tree(self.workdir)
        if error is not None:
            raise error

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()


def _split_toml(text):
    """Splits extra TOML into its top-level lines and {section: body}."""
    top, sections, current = [], {}, None
    for line in (text or "").splitlines():
        stripped = line.strip()
        if stripped.startswith("[") and not stripped.startswith("[["):
            current = stripped.strip("[]").strip()
            sections.setdefault(current, "")
            continue
        if current is None:
            top.append(line)
        else:
            sections[current] += line + "\n"
    return "\n".join(top), sections


def _unused_cidr():
    """10.X.0.0/16 with X in 100..250 that no route of the machine uses yet."""
    routes = subprocess.run(["ip", "-4", "route", "show", "table", "all"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True).stdout
    used = set(int(x) for x in re.findall(r"\b10\.(\d+)\.", routes))
    free = [x for x in range(100, 251) if x not in used] or list(range(100, 251))
    return f"10.{random.choice(free)}.0.0/16"


def _remove_cgroup(path):
    """Removes the (empty) cgroup `path` in every hierarchy under /sys/fs/cgroup."""
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f if " - cgroup" in line]
    for mount in mounts:
        try:
            os.rmdir(mount + path)
        except FileNotFoundError:
            pass
        except OSError as e:
            print(f"crib lab: cgroup {mount + path} stays: {e}", file=sys.stderr)


def _remove_tree(path):
    """Removes a lab directory, unmounting anything still mounted below it first."""
    try:
        with open("/proc/self/mounts") as f:
            mounts = [line.split()[1] for line in f]
    except OSError:
        mounts = []
    prefix = path.rstrip("/") + "/"
    for target in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", target], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    shutil.rmtree(path, ignore_errors=True)
