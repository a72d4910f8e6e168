"""kubelet v1.26.1 in standalone mode on a private cribd, for crib's end-to-end tests.

Python 3 standard library only. Builds on critest/crib_lab.py (a private cribd, a test registry,
the node tools) and adds what only kubelet needs:

    NodeGuard()
        What kubelet changes on the machine outside its own directories, kept and put back:
        the sysctls it sets (kernel.panic, kernel.panic_on_oops, vm.overcommit_memory, ...),
        and /var/log/pods, where kubelet deletes every pod directory it does not know:
        entries already there are moved aside while the lab runs and put back afterwards.
        Refuses to start (LabError) while another kubelet runs on the machine or another lab
        holds the lock. .enter() / .exit(), or a context manager.
    Kubelet(cribd, workdir, node_name="crib-e2e-<random>")
        kubelet with its own --root-dir, manifest directory (static pods), --cgroup-root
        (/crib-e2e-<random>, made in every cgroup hierarchy before it starts), the cgroupfs
        driver, its server and healthz on free loopback ports (anonymous, AlwaysAllow, no
        read-only port) and cribd's socket as its runtime. .start() waits for /healthz;
        .stop() (SIGTERM), .kill(); .put_manifest(pod) / .remove_manifest(name);
        .pods() and .pod(name) read kubelet's own view of its pods from its /pods endpoint;
        .container_log(pod, container) reads a log through kubelet's /containerLogs (kubelet
        parses the CRI log file there); .exec(pod, container, argv) runs a command,
        .attach(pod, container) attaches and .port_forward(pod, port) opens a forward through
        kubelet's /exec, /attach and /portForward over WebSocket, which kubelet proxies to
        cribd's streaming server; .close() stops kubelet and removes its mounts, its pod
        logs and its cgroup root (deepest first; refused while a cgroup holds a process).
    WebSocket(address, path, protocol, timeout)
        A client WebSocket over TLS speaking the Kubernetes channel protocol (.send(channel,
        bytes), .recv() -> (channel, bytes) or None once closed).
    sandboxes(), containers(), inspect(), inspectp(), runtime_orphans(cribd)
        The runtime's view through crictl; orphans are crib processes of the lab's cribd that
        no ready sandbox or listed container explains.
    Footprint(cribd, pod_id)
        What one pod sandbox holds on the machine (containers, processes, netns pin, mounts,
        host veth, IP allocation, cgroups), taken while it runs; .leftovers() lists what is
        still there.
    cleanup_stack
        Undo steps run in reverse by run_cleanups(), also from a SIGTERM or Ctrl-C.
    keep_logs(workdir)
        With CRIB_E2E_LOG_DIR set, copies the daemons' logs there before the lab is removed.
    restart_cribd(cribd)
        Starts a stopped lab cribd again, waiting out a relink of its binary.
    kill_lab_processes(workdir, cgroup_root=None)
        The last resort when cribd could not remove its pods (it died, its binary went): kills
        the lab's monitors, pause and container processes by pid and says which.
"""
import base64
import fcntl
import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import ssl
import string
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "critest"))

import crib_lab  # noqa: E402  (after the path above)
from crib_lab import LabError, free_port, wait_for  # noqa: E402,F401

POD_LOG_DIR = "/var/log/pods"
CONTAINER_LOG_DIR = "/var/log/containers"
LOCK_PATH = "/run/lock/crib-e2e-kubelet.lock"

# Set by kubelet at start unless protectKernelDefaults (pkg/kubelet/cm setupKernelTunables).
KUBELET_SYSCTLS = ("vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic",
                   "kernel/panic_on_oops", "kernel/keys/root_maxkeys",
                   "kernel/keys/root_maxbytes")


def suffix(n=6):
    return "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(n))


# ---- cleanup on every exit path ---------------------------------------------------------------

cleanup_stack = []


def run_cleanups():
    """Runs the registered undo steps, newest first; returns the errors as text."""
    errors = []
    while cleanup_stack:
        what, step = cleanup_stack.pop()
        try:
            step()
        except Exception as e:  # noqa: BLE001: every step runs, errors are reported together
            errors.append(f"{what}: {e}")
    return errors


def raise_on_sigterm():
    """SIGTERM (ctest's timeout, a kill) unwinds like Ctrl-C, so the cleanups run."""
    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, handler)


def run_tests(name, cribd, root_reason, tools_missing):
    """The main of an e2e test file: skips (77) without root or the node tools, fails without a
    built cribd, runs the file's unittest cases, runs the cleanups whatever happened, prints
    the wall time; returns the exit code."""
    raise_on_sigterm()
    if os.geteuid() != 0:
        print(f"{name}: needs root ({root_reason})", file=sys.stderr)
        return 77
    if crib_lab.tools_dir() is None:
        print(f"{name}: skipped: {tools_missing} and provide {crib_lab.UNPACK}, a script that "
              "prints their directory", file=sys.stderr)
        return 77
    if not os.access(cribd, os.X_OK):
        print(f"{name}: no cribd at {cribd}: build first", file=sys.stderr)
        return 1
    started = time.monotonic()
    result = None
    try:
        result = unittest.main(module="__main__", exit=False, verbosity=2).result
    finally:
        errors = run_cleanups()
        for e in errors:
            print(f"cleanup: {e}", file=sys.stderr)
        print(f"{name}: {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0 if result is not None and result.wasSuccessful() and not errors else 1


def read_or_empty(path):
    """A file's text, or "" while it does not exist."""
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def keep_logs(workdir):
    """Copies the logs of a lab's daemons to $CRIB_E2E_LOG_DIR, when it is set."""
    target = os.environ.get("CRIB_E2E_LOG_DIR")
    if not target:
        return
    os.makedirs(target, exist_ok=True)
    for path, _, files in os.walk(workdir):
        for name in files:
            if name.endswith(".log") and os.path.isfile(os.path.join(path, name)):
                shutil.copy(os.path.join(path, name), target)


# ---- the machine ------------------------------------------------------------------------------


def other_kubelets():
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() == "kubelet":
                    pids.append(int(entry))
        except OSError:
            pass
    return pids


class NodeGuard:
    """Keeps what kubelet changes outside its own directories and puts it back."""

    def __init__(self):
        self.sysctls = {}
        self.aside = None
        self.made_dirs = []
        self.lock_fd = None

    def enter(self):
        self.lock_fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.lock_fd)
            self.lock_fd = None
            raise LabError(f"another kubelet end-to-end run holds {LOCK_PATH}")
        running = other_kubelets()
        if running:
            self.exit()
            raise LabError(f"kubelet is already running on this machine (pids {running}); it "
                           f"would delete this lab's pod logs in {POD_LOG_DIR}, or this lab's "
                           "kubelet its pods' logs: stop it first")
        for key in KUBELET_SYSCTLS:
            with open(f"/proc/sys/{key}") as f:
                self.sysctls[key] = f.read().strip()
        for path in (POD_LOG_DIR, CONTAINER_LOG_DIR):
            if not os.path.isdir(path):
                os.makedirs(path, 0o755)
                self.made_dirs.append(path)
        entries = os.listdir(POD_LOG_DIR)
        if entries:
            # Same file system, so the moves are renames and cannot half-fail.
            self.aside = f"{POD_LOG_DIR}.crib-e2e-aside-{suffix()}"
            os.mkdir(self.aside, 0o700)
            for name in entries:
                os.rename(os.path.join(POD_LOG_DIR, name), os.path.join(self.aside, name))
        return self

    def exit(self):
        errors = []
        for key, value in self.sysctls.items():
            try:
                with open(f"/proc/sys/{key}") as f:
                    now = f.read().strip()
                if now != value:
                    with open(f"/proc/sys/{key}", "w") as f:
                        f.write(value)
            except OSError as e:
                errors.append(f"restore {key}={value}: {e}")
        self.sysctls = {}
        if self.aside is not None:
            for name in os.listdir(self.aside):
                target = os.path.join(POD_LOG_DIR, name)
                if os.path.exists(target):
                    errors.append(f"{target} exists again; {self.aside}/{name} left aside")
                    continue
                os.rename(os.path.join(self.aside, name), target)
            if not os.listdir(self.aside):
                os.rmdir(self.aside)
            self.aside = None
        for path in reversed(self.made_dirs):
            try:
                os.rmdir(path)
            except OSError:
                pass  # not empty: someone else's files came meanwhile
        self.made_dirs = []
        if self.lock_fd is not None:
            try:
                os.unlink(LOCK_PATH)  # still held: whoever opens it next makes a new one
            except FileNotFoundError:
                pass
            os.close(self.lock_fd)
            self.lock_fd = None
        if errors:
            raise LabError("; ".join(errors))

    def __enter__(self):
        return self.enter()

    def __exit__(self, *exc):
        self.exit()


CRIB_PROCESSES = ("cribd", "crib-monitor", "crib-pause")


def lab_processes(workdir, cgroup_root=None):
    """Pids of what a lab's cribd started that may outlive it: crib's processes whose command
    line names the lab's work dir, their descendants (the containers), and every process in
    the lab's cgroup root."""
    parents, roots = {}, set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            with open(f"/proc/{pid}/stat") as f:
                parents[pid] = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
            if comm in CRIB_PROCESSES:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if workdir.encode() in f.read():
                        roots.add(pid)
        except (OSError, ValueError, IndexError):
            pass
    pids = set(roots)
    grown = True
    while grown:
        more = {p for p, parent in parents.items() if parent in pids and p not in pids}
        pids |= more
        grown = bool(more)
    if cgroup_root:
        for mount in cgroup_mounts():
            for path, _, files in os.walk(mount + cgroup_root):
                if "cgroup.procs" in files:
                    try:
                        with open(os.path.join(path, "cgroup.procs")) as f:
                            pids.update(int(p) for p in f.read().split())
                    except OSError:
                        pass
    return sorted(p for p in pids if process_alive(p))


def kill_lab_processes(workdir, cgroup_root=None, timeout=10):
    """The last resort when cribd could not remove its pods: SIGKILL to every process of the
    lab (by pid), waiting until they are gone, then the removal of the pod cgroups their
    pause processes named. Raises LabError naming what it had to kill."""
    killed, cgroups = [], []
    for pid in lab_processes(workdir, cgroup_root):
        try:
            with open(f"/proc/{pid}/comm") as f:
                killed.append(f"{pid} {f.read().strip()}")
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().decode(errors="replace").split("\0")
            cgroups += [os.path.dirname(args[i + 1]) for i in range(len(args) - 1)
                        if args[i] == "--cgroup-join"]
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    if not killed:
        return
    wait_for("the killed lab processes to go",
             lambda: not lab_processes(workdir, cgroup_root), timeout, interval=0.1)
    for top in cgroups:
        for path, _, _ in os.walk(top, topdown=False):
            try:
                os.rmdir(path)
            except OSError:
                pass
    raise LabError(f"killed processes left by the lab: {', '.join(killed)}")


def restart_cribd(cribd, attempts=3):
    """Starts a stopped lab cribd again; the binary may be relinked meanwhile, so it waits for
    it and tries again a few seconds later when the fresh one does not come up."""
    for attempt in range(attempts):
        wait_for(f"{cribd.binary} to exist", lambda: os.access(cribd.binary, os.X_OK), 120,
                 interval=1)
        try:
            return cribd.start()
        except LabError:
            if attempt + 1 == attempts:
                raise
            cribd.kill()
            time.sleep(3)  # a relink in progress: give it a moment, then once more
    return cribd


def cgroup_mounts():
    """Mount points of every cgroup hierarchy (v1 controllers, named ones, the v2 tree), one
    per hierarchy."""
    seen, points = set(), []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstype = right.split()[0]
            if fstype not in ("cgroup", "cgroup2"):
                continue
            fields = left.split()
            key = (fields[2], fields[3])  # device and root: co-mounted controllers once
            if key in seen:
                continue
            seen.add(key)
            points.append(fields[4])
    return points


def cgroup_v1_path(controller):
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            parts = right.split()
            if parts[0] == "cgroup" and controller in parts[2].split(","):
                return left.split()[4]
    return None


def proc_cgroup(pid, controller):
    """The cgroup of a process in a v1 controller's hierarchy ("/a/b")."""
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if controller in controllers.split(","):
                return path
    return None


def process_alive(pid):
    """True for a process that exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def mounts_containing(*needles):
    needles = [n for n in needles if n]
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if any(n in fields[3] or n in fields[4] for n in needles):
                found.append(fields[4])
    return found


def unmount_below(path):
    prefix = path.rstrip("/")
    targets = [m for m in mounts_containing(prefix) if m == prefix or m.startswith(prefix + "/")]
    for target in sorted(set(targets), key=len, reverse=True):
        subprocess.run(["umount", "-l", target], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


# ---- kubelet ----------------------------------------------------------------------------------


class Kubelet:
    """kubelet v1.26.1, standalone: static pods from a manifest directory, no API server."""

    def __init__(self, cribd, workdir, node_name=None, sync_frequency="5s"):
        self.cribd = cribd
        self.workdir = os.path.abspath(workdir)
        self.node_name = node_name or "crib-e2e-" + suffix()
        self.binary = crib_lab.tool("kubelet")
        self.root_dir = os.path.join(self.workdir, "kubelet")
        self.manifest_dir = os.path.join(self.workdir, "manifests")
        self.config_path = os.path.join(self.workdir, "kubelet.json")
        self.log_path = os.path.join(self.workdir, "kubelet.log")
        # CRIB_E2E_CGROUP_DRIVER=systemd (the test then runs inside tests/systemd/systemd_lab.py):
        # kubelet's root is the slice crib_e2e_<random>.slice, started before kubelet, and
        # kubelet and cribd both use the systemd driver. cgroup_root is the cgroup path.
        self.systemd = os.environ.get("CRIB_E2E_CGROUP_DRIVER", "cgroupfs") == "systemd"
        if self.systemd:
            self.root_slice = "crib_e2e_" + suffix() + ".slice"
            self.cgroup_root = "/" + self.root_slice
        else:
            self.cgroup_root = "/crib-e2e-" + suffix()
        self.port = free_port()
        self.healthz_port = free_port()
        self.proc = None
        self._made_cgroups = False
        for d in (self.root_dir, self.manifest_dir):
            os.makedirs(d, exist_ok=True)
        config = {
            "kind": "KubeletConfiguration",
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "staticPodPath": self.manifest_dir,
            "fileCheckFrequency": "1s",
            "syncFrequency": sync_frequency,
            "address": "127.0.0.1",
            "port": self.port,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": self.healthz_port,
            "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
            "authorization": {"mode": "AlwaysAllow"},
            "cgroupDriver": "systemd" if self.systemd else "cgroupfs",
            # systemd: kubelet names its slices from the root's parts ("/a" -> a-kubepods.slice).
            "cgroupRoot": self.cgroup_root[:-len(".slice")] if self.systemd else self.cgroup_root,
            "cgroupsPerQOS": True,
            "failSwapOn": False,
            "oomScoreAdj": 0,
            "makeIPTablesUtilChains": False,
            "registerNode": False,
            "volumePluginDir": os.path.join(self.workdir, "volume-plugins"),
            # Disk usage of this machine must not evict the test pods or their images.
            "evictionHard": {"memory.available": "1Mi", "nodefs.available": "1%",
                             "imagefs.available": "1%", "nodefs.inodesFree": "1%"},
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "serializeImagePulls": False,
            "registryPullQPS": 0,  # no client-side limit: many pods start at once here
            # Small enough that a chatty container's log is rotated (ReopenContainerLog).
            "containerLogMaxSize": "16Ki",
            "containerLogMaxFiles": 3,
            "resolvConf": "/etc/resolv.conf",
            # hostUsers: false (user namespaces for pods) is alpha in kubelet 1.26.
            "featureGates": {"UserNamespacesStatelessPodsSupport": True},
        }
        with open(self.config_path, "w") as f:
            json.dump(config, f, indent=2)

    # ---- cgroups --------------------------------------------------------------------------------

    def pod_cgroup(self, qos, uid):
        """Where kubelet puts a pod's cgroup (qos: "burstable", "besteffort" or "" for
        guaranteed), below the root, with a "/" at the end."""
        if not self.systemd:
            return f"{self.cgroup_root}/kubepods{'/' + qos if qos else ''}/pod{uid}/"
        stem = self.root_slice[:-len(".slice")]
        parts = ["kubepods"] + ([qos] if qos else []) + ["pod" + uid.replace("-", "_")]
        path = self.cgroup_root
        for i in range(len(parts)):
            path += "/" + "-".join([stem] + parts[:i + 1]) + ".slice"
        return path + "/"

    def pod_cgroup_name(self, uid):
        """The last part of a pod's cgroup, as kubelet names it."""
        return "pod" + (uid.replace("-", "_") + ".slice" if self.systemd else uid)

    def _make_cgroups(self):
        if self.systemd:
            # systemd makes the slice's cgroup only in the hierarchies it uses for it; the
            # rest are made below as with cgroupfs.
            subprocess.run(["systemctl", "start", self.root_slice], check=True)
            self._made_cgroups = True
        # kubelet refuses a --cgroup-root that does not exist in its controllers' hierarchies.
        for mount in cgroup_mounts():
            path = mount + self.cgroup_root
            os.makedirs(path, exist_ok=True)
            self._made_cgroups = True
            for name in ("cpuset.cpus", "cpuset.mems"):
                own = os.path.join(path, name)
                if os.path.exists(own):
                    with open(os.path.join(mount, name)) as f:
                        value = f.read().strip()
                    with open(own, "w") as f:
                        f.write(value)

    def cgroup_dirs(self):
        """Every directory below the cgroup root in every hierarchy, deepest first."""
        dirs = []
        for mount in cgroup_mounts():
            top = mount + self.cgroup_root
            if not os.path.isdir(top):
                continue
            for path, _, _ in os.walk(top, topdown=False):
                dirs.append(path)
        return dirs

    def remove_cgroups(self):
        if not self._made_cgroups:
            return
        if self.systemd:
            # Stopping the root slice stops kubelet's slices below it; a process left in them
            # would be killed by it, so a leftover is reported first.
            busy = [f"{d}: {read_or_empty(os.path.join(d, 'cgroup.procs')).split()}"
                    for d in self.cgroup_dirs()
                    if read_or_empty(os.path.join(d, "cgroup.procs")).strip()]
            subprocess.run(["systemctl", "stop", self.root_slice], check=False)
            if busy:
                raise LabError("processes left in cgroups: " + "; ".join(busy))
        busy = []
        for path in self.cgroup_dirs():
            try:
                os.rmdir(path)
            except FileNotFoundError:
                pass
            except OSError as e:
                busy.append(f"{path}: {e.strerror}")
        if busy:
            raise LabError("cgroups left: " + "; ".join(busy))
        self._made_cgroups = False

    # ---- process --------------------------------------------------------------------------------

    def argv(self):
        return [self.binary,
                "--config", self.config_path,
                "--root-dir", self.root_dir,
                "--cert-dir", os.path.join(self.workdir, "pki"),
                "--container-runtime-endpoint", self.cribd.endpoint,
                "--hostname-override", self.node_name,
                "--v", "2"]

    def _healthy(self):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.healthz_port}/healthz",
                                        timeout=2) as resp:
                return resp.status == 200 and resp.read().strip() == b"ok"
        except (OSError, urllib.error.URLError):
            return False

    def _died(self):
        if self.proc is not None and self.proc.poll() is not None:
            return f"kubelet exited with {self.proc.returncode}: {self.log_tail(30)}"
        return None

    def start(self, timeout=90):
        if self.running():
            return self
        self._make_cgroups()
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=log, start_new_session=True)
        log.close()
        wait_for("kubelet /healthz", self._healthy, timeout, interval=0.2, failed=self._died)
        wait_for("kubelet /pods", lambda: self._get_or_none("/pods") is not None, timeout,
                 interval=0.2, failed=self._died)
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=30):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
        self.proc = None

    def log_tail(self, lines=40):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def pod_log_dirs(self):
        """This kubelet's pod log directories (<namespace>_<pod>-<node>_<uid>)."""
        mark = f"-{self.node_name}_"
        try:
            return [os.path.join(POD_LOG_DIR, n) for n in os.listdir(POD_LOG_DIR) if mark in n]
        except FileNotFoundError:
            return []

    def remove_pod_logs(self):
        """What a kubelet stopped before its pods were deleted leaves in /var/log."""
        for path in self.pod_log_dirs():
            shutil.rmtree(path, ignore_errors=True)
        mark = f"-{self.node_name}_"
        try:
            names = os.listdir(CONTAINER_LOG_DIR)
        except FileNotFoundError:
            names = []
        for name in names:
            path = os.path.join(CONTAINER_LOG_DIR, name)
            if mark in name and os.path.islink(path):
                os.unlink(path)

    def log_text(self):
        """kubelet's whole log."""
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def close(self):
        """Stops kubelet, then removes its mounts, logs, cgroups (when empty)."""
        self.stop()
        unmount_below(self.root_dir)
        self.remove_pod_logs()
        self.remove_cgroups()

    # ---- its API --------------------------------------------------------------------------------

    def _open(self, path, timeout=10):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # kubelet's own self-signed certificate
        return urllib.request.urlopen(f"https://127.0.0.1:{self.port}{path}", timeout=timeout,
                                      context=context)

    def get(self, path):
        with self._open(path) as resp:
            return resp.read()

    def _get_or_none(self, path):
        try:
            return self.get(path)
        except (OSError, urllib.error.URLError):
            return None

    def pods(self):
        return json.loads(self.get("/pods")).get("items") or []

    def full_name(self, name):
        """A static pod's name: the manifest's name and the node's."""
        return f"{name}-{self.node_name}"

    def pod(self, name):
        for pod in self.pods():
            if pod["metadata"]["name"] == self.full_name(name):
                return pod
        return None

    def container_log(self, pod, container, namespace="default", previous=False):
        query = "?previous=true" if previous else ""
        return self.get(f"/containerLogs/{namespace}/{self.full_name(pod)}/{container}"
                        f"{query}").decode(errors="replace")

    def exec(self, pod, container, argv, namespace="default", timeout=30):
        """Runs a command through kubelet's /exec, as `kubectl exec` does behind the API
        server: a WebSocket (v4.channel.k8s.io) that kubelet proxies to cribd's streaming
        server. Returns (stdout, stderr, status), status being the JSON of channel 3."""
        query = "&".join(["output=1", "error=1"] +
                         [f"command={urllib.parse.quote(a)}" for a in argv])
        path = f"/exec/{namespace}/{self.full_name(pod)}/{container}?{query}"
        channels = websocket_session(("127.0.0.1", self.port), path, "v4.channel.k8s.io",
                                     timeout)
        status = channels.get(3, b"")
        return (channels.get(1, b"").decode(errors="replace"),
                channels.get(2, b"").decode(errors="replace"),
                json.loads(status) if status else None)

    def attach(self, pod, container, namespace="default", timeout=30):
        """A WebSocket attach through kubelet's /attach with stdin and stdout (channels 0 and
        1; 3 carries the final status)."""
        return WebSocket(("127.0.0.1", self.port),
                         f"/attach/{namespace}/{self.full_name(pod)}/{container}"
                         "?input=1&output=1&error=1", "v4.channel.k8s.io", timeout)

    def port_forward(self, pod, port, namespace="default", timeout=30):
        """A WebSocket port forward through kubelet's /portForward (v4.channel.k8s.io),
        proxied to cribd's streaming server: channel 0 carries the data, 1 the errors."""
        return WebSocket(("127.0.0.1", self.port),
                         f"/portForward/{namespace}/{self.full_name(pod)}?port={port}",
                         "v4.channel.k8s.io", timeout)

    # ---- static pods ----------------------------------------------------------------------------

    def manifest_path(self, name):
        return os.path.join(self.manifest_dir, name + ".json")

    def put_manifest(self, pod):
        name = pod["metadata"]["name"]
        # kubelet skips dot files, so the file appears whole.
        tmp = os.path.join(self.manifest_dir, f".{name}.tmp")
        with open(tmp, "w") as f:
            json.dump(pod, f, indent=2)
        os.rename(tmp, self.manifest_path(name))

    def remove_manifest(self, name):
        try:
            os.unlink(self.manifest_path(name))
        except FileNotFoundError:
            pass


class WebSocket:
    """A client WebSocket (RFC 6455) over TLS, as kubectl speaks to kubelet through the API
    server: binary messages both ways, the first byte of each naming its channel."""

    def __init__(self, address, path, protocol, timeout):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # kubelet's own self-signed certificate
        self.path = path
        self.conn = context.wrap_socket(socket.create_connection(address, timeout=timeout))
        key = base64.b64encode(os.urandom(16)).decode()
        self.conn.sendall((f"GET {path} HTTP/1.1\r\nHost: {address[0]}:{address[1]}\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                           f"Sec-WebSocket-Protocol: {protocol}\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.conn.recv(4096)
            if not chunk:
                raise LabError(f"websocket {path}: closed during the handshake: {self.buf!r}")
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            self.conn.close()
            raise LabError(f"websocket {path}: {head.decode(errors='replace')} "
                           f"{self.buf.decode(errors='replace')}")

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.conn.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self):
        """The next whole message as (channel, bytes); None once the server closed."""
        message = b""
        try:
            while True:
                b0, b1 = self._read(2)
                length = b1 & 0x7F
                if length == 126:
                    length = int.from_bytes(self._read(2), "big")
                elif length == 127:
                    length = int.from_bytes(self._read(8), "big")
                mask = self._read(4) if b1 & 0x80 else None
                payload = self._read(length)
                if mask:
                    payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
                opcode = b0 & 0x0F
                if opcode == 8:
                    return None
                if opcode in (0, 1, 2):
                    message += payload
                    if b0 & 0x80 and message:  # the last fragment
                        return message[0], message[1:]
        except EOFError:
            return None

    def send(self, channel, data):
        payload = bytes([channel]) + data
        mask = os.urandom(4)
        head = bytes([0x82])  # a whole binary message
        if len(payload) < 126:
            head += bytes([0x80 | len(payload)])
        elif len(payload) < 65536:
            head += bytes([0x80 | 126]) + len(payload).to_bytes(2, "big")
        else:
            head += bytes([0x80 | 127]) + len(payload).to_bytes(8, "big")
        masked = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
        self.conn.sendall(head + mask + masked)

    def close(self):
        self.conn.close()


def websocket_session(address, path, protocol, timeout):
    """Reads every message of a WebSocket session until the server closes it, sending
    nothing; returns {channel: bytes}."""
    ws = WebSocket(address, path, protocol, timeout)
    channels = {}
    try:
        while True:
            message = ws.recv()
            if message is None:
                return channels
            channels[message[0]] = channels.get(message[0], b"") + message[1]
    finally:
        ws.close()


# ---- what the runtime shows ------------------------------------------------------------------


def crictl_json(cribd, command, *args):
    # urfave/cli: options before the positional arguments.
    return json.loads(cribd.crictl(command, "-o", "json", *args).stdout)


def sandboxes(cribd, pod_name=None, state=None):
    """crictl pods as JSON items, optionally for kubelet's pod `pod_name` (its full name)."""
    args = ["pods"]
    if pod_name:
        args += ["--label", f"io.kubernetes.pod.name={pod_name}"]
    if state:
        args += ["--state", state]
    return crictl_json(cribd, *args)["items"]


def containers(cribd, pod_id=None, name=None):
    args = ["ps", "-a"]
    if pod_id:
        args += ["--pod", pod_id]
    if name:
        args += ["--label", f"io.kubernetes.container.name={name}"]
    return crictl_json(cribd, *args)["containers"]


def restart_count(container):
    return int(container["annotations"].get("io.kubernetes.container.restartCount", "0"))


def inspect(cribd, container_id):
    return crictl_json(cribd, "inspect", container_id)


def inspectp(cribd, pod_id):
    return crictl_json(cribd, "inspectp", pod_id)


def runtime_orphans(cribd):
    """crib processes of this cribd that no record explains: pause processes of sandboxes that
    are not ready (or not listed), monitors of containers that are not listed."""
    ready = {p["id"] for p in sandboxes(cribd, state="ready")}
    known = {c["id"] for c in containers(cribd)}
    orphans = []
    for pid in lab_processes(cribd.workdir):
        try:
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        flag, ids = {"crib-pause": ("--pod", ready),
                     "crib-monitor": ("--bundle", known)}.get(comm, (None, None))
        if flag is None or flag not in args[:-1]:
            continue
        owner = os.path.basename(args[args.index(flag) + 1].rstrip("/"))
        if owner not in ids:
            orphans.append(f"{comm} {pid} of {owner[:12]}")
    return orphans


class Footprint:
    """What one running pod sandbox holds on the machine, to check that all of it goes."""

    def __init__(self, cribd, pod_id):
        self.cribd = cribd
        self.pod_id = pod_id
        doc = inspectp(cribd, pod_id)
        info = doc.get("info", {})
        self.netns = info.get("netNamespacePath", "")
        self.pins = [p for p in (info.get("ipcNamespacePath", ""), info.get("utsNamespacePath", ""))
                     if p]
        self.cgroup = info.get("cgroupPath", "")
        self.pod_dir = info.get("podDir", "")
        network = doc["status"].get("network") or {}
        self.ip = network.get("ip", "")
        self.container_ids = [c["id"] for c in containers(cribd, pod_id=pod_id)]
        self.pids = [info.get("pid", 0)]
        for cid in self.container_ids:
            self.pids.append(inspect(cribd, cid).get("info", {}).get("pid", 0))
        self.pids = [p for p in self.pids if p and process_alive(p)]
        self.host_veth = self._host_veth()
        self.mounts = mounts_containing(pod_id, *self.container_ids)

    def _host_veth(self):
        if not self.netns or not self.ip:
            return None
        # sysfs would still show the host's links: ask the namespace's own netlink.
        out = subprocess.run(["nsenter", f"--net={self.netns}", "ip", "-o", "link", "show",
                              "dev", "eth0"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        match = re.search(r"@if(\d+):", out.stdout)
        if out.returncode != 0 or not match:
            return None
        index = match.group(1)
        for name in os.listdir("/sys/class/net"):
            try:
                with open(f"/sys/class/net/{name}/ifindex") as f:
                    if f.read().strip() == index:
                        return name
            except OSError:
                pass
        return None

    def allocated_ips(self):
        """The addresses cribd's IP allocations still hold for the pod."""
        db = os.path.join(self.cribd.root_dir, "metadata.db")
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            rows = conn.execute("SELECT ip FROM ip_allocations WHERE owner = ?",
                                (self.pod_id,)).fetchall()
        finally:
            conn.close()
        return [r[0] for r in rows]

    def leftovers(self):
        """Everything of the pod still on the machine, as text; empty when it is all gone."""
        left = []
        ids = set(c["id"] for c in containers(self.cribd))
        left += [f"container {c}" for c in self.container_ids if c in ids]
        if any(p["id"] == self.pod_id for p in sandboxes(self.cribd)):
            left.append(f"sandbox {self.pod_id}")
        if self.netns and os.path.exists(self.netns):
            left.append(f"netns pin {self.netns}")
        left += [f"namespace pin {p}" for p in self.pins if os.path.exists(p)]
        if self.pod_dir and os.path.exists(self.pod_dir):
            left.append(f"pod dir {self.pod_dir}")
        left += [f"mount {m}" for m in mounts_containing(self.pod_id, *self.container_ids)]
        if self.host_veth and os.path.exists(f"/sys/class/net/{self.host_veth}"):
            left.append(f"veth {self.host_veth}")
        if self.ip:
            left += [f"IP {ip} still allocated to the pod" for ip in self.allocated_ips()]
        if self.cgroup:
            left += [f"cgroup {m}{self.cgroup}" for m in cgroup_mounts()
                     if os.path.isdir(m + self.cgroup)]
        left += [f"process {p}" for p in self.pids if process_alive(p)]
        return left
