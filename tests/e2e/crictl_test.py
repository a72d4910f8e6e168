#!/usr/bin/env python3
"""End-to-end: the README's user path with crictl v1.26.1 on a private cribd.

One cribd and one test registry serve the class. A pod made with `crictl runp` holds the
containers of the tests (`create`, `start`); the tests drive `exec` (sync, with stdin, with a
terminal), `logs` (also `-f`), `attach`, `port-forward`, `stats`, `inspect`/`inspectp`/
`inspecti` and finally `rmp -f`, after which nothing of the pod may be left on the machine.
crictl's long-running commands run under deadlines; the terminal ones get a pseudo-terminal.

Run as root: tests/e2e/crictl_test.py [-v] [unittest arguments]. Exits 77 (skipped) when
../shared/k8s-node-tools is missing. Needs the built cribd in build/src/cribd, or CRIBD_PATH.
"""
import fcntl
import json
import os
import pty
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kubelet_lab as lab  # noqa: E402
from kubelet_lab import crib_lab, read_or_empty, wait_for  # noqa: E402

CRIBD = os.environ.get("CRIBD_PATH", crib_lab.DEFAULT_CRIBD)  # ctest passes the build's


class Client:
    """A crictl process left running (logs -f, attach, port-forward, exec -t), read with a
    deadline and stopped on the way out."""

    def __init__(self, argv, stdin=subprocess.DEVNULL, tty=False, rows=24, columns=80):
        self.tty = tty
        self.output = b""
        if tty:
            self.master, slave = pty.openpty()
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
            self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                                         start_new_session=True)
            os.close(slave)
            self.out_fd = self.master
        else:
            self.proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, start_new_session=True)
            self.out_fd = self.proc.stdout.fileno()

    def write(self, data):
        if self.tty:
            os.write(self.master, data)
        else:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()

    def _read_some(self, timeout):
        ready, _, _ = select.select([self.out_fd], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(self.out_fd, 65536)
        except OSError:  # EIO: the terminal's other side is closed
            chunk = b""
        self.output += chunk
        return bool(chunk)

    def read_until(self, text, timeout=30):
        """Reads until `text` appeared in the output; fails after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while text.encode() not in self.output:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{text!r} not within {timeout} s; output so far: "
                                     f"{self.output.decode(errors='replace')!r}")
            if not self._read_some(min(left, 0.5)) and self.proc.poll() is not None:
                raise AssertionError(f"crictl exited with {self.proc.returncode} before "
                                     f"{text!r}: {self.output.decode(errors='replace')!r}")
        return self.output.decode(errors="replace")

    def wait(self, timeout=30):
        """Reads to the end and returns the exit code."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._read_some(0.2) and self.proc.poll() is not None:
                return self.proc.returncode
        raise AssertionError(f"crictl still runs after {timeout} s: "
                             f"{self.output.decode(errors='replace')!r}")

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.tty:
            os.close(self.master)
            self.tty = False
        elif self.proc.stdout is not None:
            self.proc.stdout.close()
            if self.proc.stdin is not None:
                self.proc.stdin.close()


class CrictlUserPath(unittest.TestCase):
    """One pod made with crictl runp; the numbered tests run in order. HANDLER: the pod's
    runtime handler (`crictl runp --runtime`): "" for crib's own launcher; the subclasses
    below run the same path under Debian's runc and crun."""

    HANDLER = ""
    LINUX = {}  # the pod's and its containers' `linux` object

    @classmethod
    def setUpClass(cls):
        cls.workdir = tempfile.mkdtemp(prefix="crib-e2e-crictl-")
        lab.cleanup_stack.append(("remove the work dir",
                                  lambda: crib_lab._remove_tree(cls.workdir)))
        cls.registry = crib_lab.Registry(os.path.join(cls.workdir, "registry")).start()
        lab.cleanup_stack.append(("stop the registry", cls.registry.stop))
        crib_lab.push_test_images(cls.registry.host, only=["busybox:latest"])
        cls.image = f"{cls.registry.host}/busybox:latest"
        # CRIB_E2E_CGROUP_DRIVER=systemd: inside tests/systemd/systemd_lab.py, on its systemd.
        driver = os.environ.get("CRIB_E2E_CGROUP_DRIVER", "cgroupfs")
        cls.cribd = crib_lab.Cribd(os.path.join(cls.workdir, "cribd"), binary=CRIBD,
                                   extra_toml=f'cgroup_driver = "{driver}"\n' +
                                   crib_lab.runtime_handlers_toml())
        lab.cleanup_stack.append(("kill what cribd left",
                                  lambda: lab.kill_lab_processes(cls.workdir)))
        lab.cleanup_stack.append(("close cribd", cls.cribd.close))
        lab.cleanup_stack.append(("keep the logs", lambda: lab.keep_logs(cls.workdir)))
        cls.cribd.start()
        cls.clients = []
        lab.cleanup_stack.append(("stop crictl clients",
                                  lambda: [c.stop() for c in cls.clients]))
        cls.crictl("pull", cls.image)
        cls.pod_config = cls.write_json("pod.json", {
            "metadata": {"name": "crictl-pod", "namespace": "e2e", "uid": "crictl-pod-uid",
                         "attempt": 0},
            "hostname": "crictl-pod",
            "log_directory": os.path.join(cls.workdir, "pod-logs"),
            "linux": cls.LINUX,
        })
        runtime = ["--runtime", cls.HANDLER] if cls.HANDLER else []
        cls.pod_id = cls.crictl("runp", *runtime, cls.pod_config).stdout.strip()
        cls.ids = {}

    @classmethod
    def tearDownClass(cls):
        errors = lab.run_cleanups()
        if errors:
            raise AssertionError("cleanup: " + "; ".join(errors))

    @classmethod
    def crictl(cls, *args, **kwargs):
        return cls.cribd.crictl(*args, **kwargs)

    @classmethod
    def argv(cls, *args):
        return [crib_lab.tool("crictl"), "--runtime-endpoint", cls.cribd.endpoint,
                "--image-endpoint", cls.cribd.endpoint] + [str(a) for a in args]

    @classmethod
    def write_json(cls, name, doc):
        path = os.path.join(cls.workdir, name)
        with open(path, "w") as f:
            json.dump(doc, f)
        return path

    def client(self, *args, **kwargs):
        c = Client(self.argv(*args), **kwargs)
        self.clients.append(c)
        return c

    def container(self, name, script, **extra):
        """Creates and starts a container in the pod with crictl create and start."""
        if name in self.ids:
            return self.ids[name]
        config = {"metadata": {"name": name}, "image": {"image": self.image},
                  "command": ["sh", "-c", script], "log_path": f"{name}.log",
                  "linux": self.LINUX}
        config.update(extra)
        path = self.write_json(f"{name}.json", config)
        cid = self.crictl("create", self.pod_id, path, self.pod_config).stdout.strip()
        self.assertEqual(self.state(cid), "CONTAINER_CREATED")
        self.crictl("start", cid)
        wait_for(f"container {name} running", lambda: self.state(cid) == "CONTAINER_RUNNING", 30)
        self.ids[name] = cid
        return cid

    def state(self, cid):
        return lab.inspect(self.cribd, cid)["status"]["state"]

    def worker(self):
        return self.container("worker", "trap 'exit 0' TERM; echo worker up; "
                                        "while true; do sleep 1; done")

    # ---- runp, create, start ------------------------------------------------------------------

    def test_10_runp_create_start(self):
        pods = lab.sandboxes(self.cribd)
        self.assertEqual([p["id"] for p in pods], [self.pod_id])
        self.assertEqual(pods[0]["state"], "SANDBOX_READY")
        cid = self.worker()
        listed = lab.containers(self.cribd, pod_id=self.pod_id)
        self.assertIn(cid, [c["id"] for c in listed])
        log = os.path.join(self.workdir, "pod-logs", "worker.log")
        wait_for(f"{log}", lambda: "worker up" in read_or_empty(log), 30)

    # ---- exec ---------------------------------------------------------------------------------

    def test_20_exec_sync(self):
        cid = self.worker()
        out = self.crictl("exec", "-s", cid, "sh", "-c", "echo to stdout; echo to stderr >&2")
        # crictl prints the reply's stdout and then its stderr, each with a newline added.
        self.assertEqual(out.stdout, "to stdout\n\nto stderr\n\n")
        failed = self.crictl("exec", "-s", cid, "sh", "-c", "exit 3", check=False)
        self.assertNotEqual(failed.returncode, 0)
        self.assertIn("exited with 3", failed.stderr)
        hostname = self.crictl("exec", "-s", cid, "hostname").stdout.strip()
        self.assertEqual(hostname, "crictl-pod")

    def test_21_exec_streaming(self):
        cid = self.worker()
        out = self.crictl("exec", cid, "sh", "-c", "echo streamed; echo err >&2; exit 4",
                          check=False)
        self.assertEqual(out.stdout, "streamed\n")
        self.assertTrue(out.stderr.startswith("err\n"), out.stderr)
        # crictl turns a non-zero exit code into its own failure, naming the code.
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("command terminated with exit code 4", out.stderr)

    def test_22_exec_stdin(self):
        cid = self.worker()
        c = self.client("exec", "-i", cid, "sh", "-c", 'read line; echo "got $line"',
                        stdin=subprocess.PIPE)
        c.write(b"hello through stdin\n")
        c.proc.stdin.close()
        self.assertEqual(c.wait(), 0, c.output)
        self.assertIn(b"got hello through stdin", c.output)

    def test_23_exec_tty(self):
        cid = self.worker()
        c = self.client("exec", "-i", "-t", cid, "sh", tty=True, rows=31, columns=97)
        c.write(b"test -t 0 && echo term-$((6*7))\n")
        c.read_until("term-42")
        c.write(b"stty size\n")
        c.read_until("31 97")  # crictl passes its terminal's size on
        c.write(b"exit 5\n")
        c.wait()
        self.assertIn(b"command terminated with exit code 5", c.output)

    # ---- logs ---------------------------------------------------------------------------------

    def test_30_logs_and_follow(self):
        cid = self.container("ticker", 'i=0; while true; do echo "tick $i"; '
                                       "i=$((i+1)); sleep 0.2; done")
        follow = self.client("logs", "-f", cid)
        follow.read_until("tick 0\n")
        follow.read_until("tick 10\n")  # lines written after crictl started following
        self.assertIsNone(follow.proc.poll(), "logs -f ended by itself")
        follow.stop()
        out = self.crictl("logs", cid).stdout
        self.assertTrue(out.startswith("tick 0\ntick 1\n"), out[:100])
        tail = self.crictl("logs", "--tail", "1", cid).stdout
        self.assertRegex(tail, r"^tick \d+\n$")
        stamped = self.crictl("logs", "-t", "--tail", "1", cid).stdout
        self.assertRegex(stamped, r"^\d{4}-\d\d-\d\dT\S+ tick \d+\n$")

    # ---- attach -------------------------------------------------------------------------------

    def test_40_attach(self):
        cid = self.container("echoer", 'while read line; do echo "echo: $line"; done',
                             stdin=True)
        c = self.client("attach", "-i", cid, stdin=subprocess.PIPE)
        c.write(b"ping one\n")
        c.read_until("echo: ping one")
        c.write(b"ping two\n")
        c.read_until("echo: ping two")
        c.stop()
        self.assertEqual(self.state(cid), "CONTAINER_RUNNING")
        logs = self.crictl("logs", cid).stdout
        self.assertIn("echo: ping two", logs)

    def test_41_attach_tty(self):
        cid = self.container("shell", "exec sh", stdin=True, tty=True)
        c = self.client("attach", "-i", "-t", cid, tty=True)
        c.write(b"echo attached-$((20+3))\n")
        c.read_until("attached-23")
        c.stop()
        self.assertEqual(self.state(cid), "CONTAINER_RUNNING")

    # ---- port-forward -------------------------------------------------------------------------

    def forward(self):
        """A crictl port-forward from a free local port to the pod's port 8080."""
        self.container("web", "mkdir -p /www && echo forwarded page > /www/index.html && "
                              "exec httpd -f -p 8080 -h /www")
        local = crib_lab.free_port()
        c = self.client("port-forward", self.pod_id, f"{local}:8080")
        c.read_until(f"Forwarding from 127.0.0.1:{local} -> 8080")
        return c, local

    @staticmethod
    def request(port, until_closed=False, timeout=10):
        """An HTTP/1.0 GET through the forward: the bytes read until the page came (or, with
        `until_closed`, until the connection closed); None when connecting failed."""
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        except OSError:
            return None
        data = b""
        with s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if not until_closed and b"forwarded page" in data:
                    break
                try:
                    chunk = s.recv(4096)
                except socket.timeout:
                    break
                if not chunk:
                    return data.decode(errors="replace") + "<closed>"
                data += chunk
        return data.decode(errors="replace")

    def test_50_port_forward(self):
        c, local = self.forward()
        body = wait_for("a page through port-forward", lambda: self.request(local), 30)
        self.assertIn("forwarded page", body)
        self.assertIn("forwarded page", self.request(local))  # a second connection
        c.stop()

    def test_51_port_forward_closes_when_the_pod_closes(self):
        # busybox httpd closes after an HTTP/1.0 reply; the client must see that close.
        c, local = self.forward()
        body = self.request(local, until_closed=True)
        self.assertIn("forwarded page", body)
        self.assertTrue(body.endswith("<closed>"), "the forwarded connection stayed open "
                        "after the pod's side closed it")
        c.stop()

    # ---- stats, inspect ---------------------------------------------------------------------

    def test_60_stats(self):
        cid = self.worker()
        doc = json.loads(self.crictl("stats", "-o", "json", "--id", cid).stdout)
        self.assertEqual(len(doc["stats"]), 1, doc)
        stats = doc["stats"][0]
        self.assertEqual(stats["attributes"]["id"], cid)
        self.assertEqual(stats["attributes"]["metadata"]["name"], "worker")
        self.assertGreater(int(stats["cpu"]["usageCoreNanoSeconds"]["value"]), 0)
        self.assertGreater(int(stats["memory"]["workingSetBytes"]["value"]), 0)
        pods = json.loads(self.crictl("statsp", "-o", "json").stdout)
        self.assertEqual([p["attributes"]["id"] for p in pods["stats"]], [self.pod_id])

    def test_70_inspect(self):
        cid = self.worker()
        doc = lab.inspect(self.cribd, cid)
        self.assertEqual(doc["status"]["metadata"]["name"], "worker")
        self.assertEqual(doc["status"]["state"], "CONTAINER_RUNNING")
        self.assertEqual(doc["status"]["image"]["image"], self.image)
        pid = doc["info"]["pid"]
        self.assertTrue(os.path.exists(f"/proc/{pid}"), doc["info"])
        pod = lab.inspectp(self.cribd, self.pod_id)
        self.assertEqual(pod["status"]["state"], "SANDBOX_READY")
        self.assertEqual(pod["status"]["metadata"]["name"], "crictl-pod")
        ip = pod["status"]["network"]["ip"]
        self.assertTrue(ip.startswith(self.cribd.pod_cidr.split(".0.0/")[0] + "."), ip)
        image = json.loads(self.crictl("inspecti", "-o", "json", self.image).stdout)
        self.assertIn(self.image, image["status"]["repoTags"])

    # ---- rmp -f -------------------------------------------------------------------------------

    def test_90_rmp_force_leaves_nothing(self):
        self.worker()
        footprint = lab.Footprint(self.cribd, self.pod_id)
        self.assertTrue(footprint.container_ids)
        self.assertTrue(footprint.mounts, "the running pod holds no mount")
        self.crictl("rmp", "-f", self.pod_id)
        self.assertEqual(lab.sandboxes(self.cribd), [])
        self.assertEqual(lab.containers(self.cribd), [])
        self.assertGreaterEqual(len(footprint.pids), 2, "pause and worker processes")
        self.assertEqual(footprint.leftovers(), [])


class CrictlUserPathRunc(CrictlUserPath):
    HANDLER = "runc"

    def test_11_the_runtime_runs_it(self):
        cid = self.worker()
        self.assertEqual(lab.inspectp(self.cribd, self.pod_id)["status"]["runtimeHandler"],
                         self.HANDLER)
        state = os.path.join(self.cribd.state_dir, "runtimes", self.HANDLER, cid)
        self.assertTrue(os.path.isdir(state), f"{state}: the runtime holds no state of it")
        if os.environ.get("CRIB_E2E_CGROUP_DRIVER") == "systemd":
            # The runtime had systemd start the container's scope in the pod's slice.
            pid = lab.inspect(self.cribd, cid)["info"]["pid"]
            with open(f"/proc/{pid}/cgroup") as f:
                memory = next(line for line in f if ":memory:" in line or line.startswith("0::"))
            self.assertIn(f"{self.pod_id}.slice/crib-{cid}.scope", memory)
            unit = subprocess.run(["systemctl", "is-active", f"crib-{cid}.scope"],
                                  capture_output=True, text=True).stdout.strip()
            self.assertEqual(unit, "active")


class CrictlUserPathCrun(CrictlUserPathRunc):
    HANDLER = "crun"


USERNS_HOST_ID = 3 << 20


class CrictlUserPathUserns(CrictlUserPath):
    """The same path for a pod in a user namespace of its own (hostUsers: false)."""

    LINUX = {"security_context": {"namespace_options": {"userns_options": {
        "mode": 0,
        "uids": [{"host_id": USERNS_HOST_ID, "container_id": 0, "length": 65536}],
        "gids": [{"host_id": USERNS_HOST_ID, "container_id": 0, "length": 65536}]}}}}

    def test_11_in_the_pods_user_namespace(self):
        cid = self.worker()
        out = self.crictl("exec", "-s", cid, "cat", "/proc/self/uid_map").stdout.split()
        self.assertEqual(out, ["0", str(USERNS_HOST_ID), "65536"])
        pid = lab.inspect(self.cribd, cid)["info"]["pid"]
        with open(f"/proc/{pid}/status") as f:
            uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
        self.assertEqual(uids, [str(USERNS_HOST_ID)] * 4)
        pin = os.path.join(self.cribd.state_dir, "userns", self.pod_id)
        self.assertEqual(os.stat(f"/proc/{pid}/ns/user").st_ino, os.stat(pin).st_ino)


def main():
    return lab.run_tests("crictl_test", CRIBD, "cribd, namespaces, cgroups, mounts",
                         "needs crictl v1.26.1, which Debian 12 does not package: build it "
                         "(cri-tools v1.26.1 cmd/crictl)")


if __name__ == "__main__":
    sys.exit(main())
