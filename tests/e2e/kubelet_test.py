#!/usr/bin/env python3
"""End-to-end: kubelet v1.26.1 in standalone mode runs static pods on a private cribd.

One kubelet and one cribd serve the whole class: the pods are written to kubelet's manifest
directory at once in setUpClass and each test checks its own from outside, through kubelet's
own API (/pods, /containerLogs, /exec, /attach, /portForward, /stats/summary), its files
(/var/log/pods, its root dir), crictl and the machine (cgroups, mounts, links, ports). The
tests run in the order of their numbers: the kubelet restart, the cribd crashes and the
manifest removal come last.

Run as root: tests/e2e/kubelet_test.py [-v] [unittest arguments]. Exits 77 (skipped) when
../shared/k8s-node-tools is missing. Needs the built cribd in build/src/cribd, or CRIBD_PATH.
"""
import json
import os
import re
import sys
import tempfile
import time
import unittest
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kubelet_lab as lab  # noqa: E402
from kubelet_lab import crib_lab, read_or_empty, wait_for  # noqa: E402

IMAGE = "busybox:latest"  # pushed to the lab's registry; pods name it with the registry host
CRI_LOG_LINE = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2}) "
    r"(stdout|stderr) (P|F) (.*)$")
POD_TIMEOUT = 90
CRIBD = os.environ.get("CRIBD_PATH", crib_lab.DEFAULT_CRIBD)  # ctest passes the build's


def container(name, script, **extra):
    spec = {"name": name, "image": KubeletStaticPods.image, "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", script]}
    spec.update(extra)
    return spec


def manifest(name, containers, **spec):
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": "default"},
           "spec": {"containers": containers, "terminationGracePeriodSeconds": 1}}
    pod["spec"].update(spec)
    return pod


def statuses(pod, init=False):
    key = "initContainerStatuses" if init else "containerStatuses"
    return {s["name"]: s for s in pod.get("status", {}).get(key, [])}


def runtime_id(container_id):
    """kubelet's "<runtime>://<id>" as the runtime's id."""
    return container_id.split("://", 1)[-1]


def all_running(pod):
    if pod is None or pod.get("status", {}).get("phase") != "Running":
        return False
    own = statuses(pod)
    names = [c["name"] for c in pod["spec"]["containers"]]
    return all(n in own and "running" in own[n].get("state", {}) for n in names)


# Waiting reasons that kubelet retries but that do not go away by themselves here.
STUCK_REASONS = ("CreateContainerError", "CreateContainerConfigError", "RunContainerError",
                 "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "StartError")


def stuck(pod):
    """A container of the pod that cannot start, as text; None when there is none."""
    if pod is None:
        return None
    for init in (True, False):
        for s in statuses(pod, init).values():
            waiting = s.get("state", {}).get("waiting", {})
            if waiting.get("reason") in STUCK_REASONS:
                return f"container {s['name']}: {waiting['reason']}: {waiting.get('message')}"
    return None


def condition(pod, kind):
    for c in pod.get("status", {}).get("conditions", []):
        if c["type"] == kind:
            return c["status"] == "True"
    return False


def http_get(port, timeout=5):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=timeout) as resp:
        return resp.read().decode()


def http_get_or_none(port):
    try:
        return http_get(port)
    except OSError:
        return None


class KubeletStaticPods(unittest.TestCase):
    """The pods of one kubelet; the numbered tests run in order."""

    image = None

    @classmethod
    def setUpClass(cls):
        started = time.monotonic()
        cls.workdir = tempfile.mkdtemp(prefix="crib-e2e-kubelet-")
        lab.cleanup_stack.append(("remove the work dir",
                                  lambda: crib_lab._remove_tree(cls.workdir)))
        cls.guard = lab.NodeGuard().enter()
        lab.cleanup_stack.append(("restore the node settings", cls.guard.exit))
        cls.registry = crib_lab.Registry(os.path.join(cls.workdir, "registry")).start()
        lab.cleanup_stack.append(("stop the registry", cls.registry.stop))
        crib_lab.push_test_images(cls.registry.host, only=[IMAGE])
        cls.image = f"{cls.registry.host}/{IMAGE}"
        # Undone in this order: kubelet stops (it must not recreate what cribd removes), cribd
        # removes the pods and stops, whatever it could not remove is killed, then kubelet's
        # mounts, logs and emptied cgroups go.
        cls.kubelet = None
        lab.cleanup_stack.append(("close kubelet", lambda: cls.kubelet and cls.kubelet.close()))
        lab.cleanup_stack.append(("kill what cribd left", lambda: lab.kill_lab_processes(
            cls.workdir, cls.kubelet.cgroup_root if cls.kubelet else None)))
        driver = os.environ.get("CRIB_E2E_CGROUP_DRIVER", "cgroupfs")
        cls.cribd = crib_lab.Cribd(os.path.join(cls.workdir, "cribd"), binary=CRIBD,
                                   extra_toml=f'cgroup_driver = "{driver}"\n')
        lab.cleanup_stack.append(("close cribd", cls.cribd.close))
        lab.cleanup_stack.append(("keep the logs", lambda: lab.keep_logs(cls.workdir)))
        cls.cribd.start()
        cls.cribd.crictl("pull", cls.image)  # present before kubelet's pods ask for it
        cls.kubelet = lab.Kubelet(cls.cribd, os.path.join(cls.workdir, "node"))
        lab.cleanup_stack.append(("stop kubelet", cls.kubelet.stop))
        cls.kubelet.start()
        cls.hostpath = os.path.join(cls.workdir, "hostpath")
        os.makedirs(cls.hostpath)
        with open(os.path.join(cls.hostpath, "host-file"), "w") as f:
            f.write("written on the host\n")
        cls.hooks_dir = os.path.join(cls.workdir, "hooks")
        cls.hostnet_port = crib_lab.free_port()
        cls.host_port = crib_lab.free_port()
        for pod in cls.manifests():
            cls.kubelet.put_manifest(pod)
        print(f"\nkubelet and cribd up in {time.monotonic() - started:.1f} s "
              f"(node {cls.kubelet.node_name}, cgroup root {cls.kubelet.cgroup_root})",
              file=sys.stderr)

    @classmethod
    def tearDownClass(cls):
        errors = lab.run_cleanups()
        if errors:
            raise AssertionError("cleanup: " + "; ".join(errors))
        left = cls.machine_leftovers()
        if left:
            raise AssertionError("left on the machine: " + "; ".join(left))

    @classmethod
    def machine_leftovers(cls):
        left = [f"mount {m}" for m in lab.mounts_containing(cls.workdir)]
        if os.path.exists(f"/sys/class/net/{cls.cribd.bridge}"):
            left.append(f"bridge {cls.cribd.bridge}")
        left += [f"cgroup {d}" for d in cls.kubelet.cgroup_dirs()]
        left += [f"pod logs {d}" for d in cls.kubelet.pod_log_dirs()]
        left += [f"kubelet pid {p}" for p in lab.other_kubelets()]
        if os.path.exists(cls.workdir):
            left.append(f"work dir {cls.workdir}")
        return left

    @classmethod
    def manifests(cls):
        forever = "exec sleep 100000"
        return [
            manifest("multi", [
                container("web", 'i=0; while true; do echo "web line $i"; i=$((i+1)); '
                                 "sleep 1; done",
                          volumeMounts=[{"name": "work", "mountPath": "/work"}]),
                container("side", "cat /work/init-done; echo side to stderr >&2; "
                                  "cat /host/host-file; echo written by the pod > "
                                  f"/host/pod-file; {forever}",
                          volumeMounts=[{"name": "work", "mountPath": "/work"},
                                        {"name": "host", "mountPath": "/host"}]),
            ], initContainers=[
                container("init", "echo init says hello; echo made by init > /work/init-done",
                          volumeMounts=[{"name": "work", "mountPath": "/work"}]),
            ], volumes=[
                {"name": "work", "emptyDir": {}},
                {"name": "host", "hostPath": {"path": cls.hostpath, "type": "Directory"}},
            ]),
            manifest("secure", [
                container("app", "id; cat /proc/sys/net/ipv4/ping_group_range; "
                                 "touch /x || echo the rootfs is read-only; ls -ldn /data; "
                                 "touch /data/f && ls -ln /data/f; "
                                 "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; "
                                 f"{forever}",
                          securityContext={"runAsUser": 1000, "runAsGroup": 3000,
                                           "readOnlyRootFilesystem": True,
                                           "allowPrivilegeEscalation": False,
                                           "capabilities": {"drop": ["ALL"]}},
                          volumeMounts=[{"name": "data", "mountPath": "/data"}]),
            ], securityContext={"fsGroup": 2000, "supplementalGroups": [4000],
                                "sysctls": [{"name": "net.ipv4.ping_group_range",
                                             "value": "0 2000"}]},
               volumes=[{"name": "data", "emptyDir": {}}]),
            manifest("naming", [
                container("names", "hostname; cat /etc/resolv.conf /etc/hosts; " + forever),
            ], hostname="custom-host", dnsPolicy="None",
               dnsConfig={"nameservers": ["192.0.2.53"], "searches": ["e2e.example"],
                          "options": [{"name": "ndots", "value": "3"}]},
               hostAliases=[{"ip": "192.0.2.10", "hostnames": ["alias.e2e"]}]),
            manifest("shared-pid", [
                container("first", "exec sleep 100001"),
                container("second", forever),
            ], shareProcessNamespace=True),
            manifest("hooks", [
                container("hooked", forever,
                          lifecycle={"postStart": {"exec": {"command": [
                                         "sh", "-c", "echo started > /hooks/post-start"]}},
                                     "preStop": {"exec": {"command": [
                                         "sh", "-c", "echo stopping > /hooks/pre-stop"]}}},
                          volumeMounts=[{"name": "hooks", "mountPath": "/hooks"}]),
            ], volumes=[{"name": "hooks", "hostPath": {"path": cls.hooks_dir,
                                                       "type": "DirectoryOrCreate"}}],
               terminationGracePeriodSeconds=10),
            # Writes fast enough to pass kubelet's containerLogMaxSize between its checks.
            manifest("chatty", [
                container("talker", "pad=$(printf '%0200d' 0); i=0; while true; do "
                                    'echo "line $i $pad"; i=$((i+1)); '
                                    "[ $((i % 20)) = 0 ] && sleep 0.1; done"),
            ]),
            manifest("interactive", [
                container("echoer", 'while read line; do echo "echo: $line"; done',
                          stdin=True),
            ]),
            manifest("hostns", [
                container("plain", forever),
                container("priv", "grep CapEff /proc/self/status; ls /dev; " + forever,
                          securityContext={"privileged": True}),
            ], hostPID=True, hostIPC=True),
            # A pod in a user namespace of its own, kubelet's mappings.
            manifest("userns", [
                container("app", "cat /proc/self/uid_map /proc/self/gid_map; id -u; "
                                 "stat -c 'image %u:%g' /bin/busybox; "
                                 "stat -c 'pod files %u:%g' /etc/hostname /etc/resolv.conf; "
                                 "echo by root of the pod > /data/root-file; "
                                 "touch /made-in-rootfs && echo rootfs writable; "
                                 f"{forever}",
                          volumeMounts=[{"name": "data", "mountPath": "/data"}]),
            ], hostUsers=False, volumes=[{"name": "data", "emptyDir": {}}]),
            manifest("mutable", [
                container("app", f"echo version $VERSION; {forever}",
                          env=[{"name": "VERSION", "value": "1"}]),
            ]),
            manifest("badimage", [
                dict(container("app", forever), image=f"{cls.registry.host}/no-such:latest"),
            ]),
            manifest("probes", [
                container("probed", f"touch /tmp/alive /tmp/ready; echo up; {forever}",
                          readinessProbe={"exec": {"command": ["cat", "/tmp/ready"]},
                                          "periodSeconds": 1, "failureThreshold": 1},
                          livenessProbe={"exec": {"command": ["cat", "/tmp/alive"]},
                                         "periodSeconds": 1, "failureThreshold": 1}),
            ]),
            # Each container fails once, then runs: its first log is the previous one.
            manifest("crasher", [
                container("crash", "if [ -e /state/crash ]; then echo second run; "
                                   f"{forever}; fi; touch /state/crash; echo first run; "
                                   "echo goodbye from crasher > /dev/termination-log; exit 3",
                          volumeMounts=[{"name": "state", "mountPath": "/state"}]),
                container("fallback", "if [ -e /state/fallback ]; then echo second run; "
                                      f"{forever}; fi; touch /state/fallback; "
                                      "echo last words of fallback; exit 1",
                          terminationMessagePolicy="FallbackToLogsOnError",
                          volumeMounts=[{"name": "state", "mountPath": "/state"}]),
            ], volumes=[{"name": "state", "emptyDir": {}}]),
            manifest("job", [
                container("once", "echo job done"),
            ], restartPolicy="OnFailure"),
            manifest("oom", [
                # tail keeps its whole input when no newline comes: 256 MiB against 24 MiB.
                container("hog", "head -c 268435456 /dev/zero | tail > /dev/null",
                          resources={"limits": {"memory": "24Mi"}}),
            ], restartPolicy="Never"),
            manifest("hostnet", [
                container("web", "mkdir -p /www && echo hostnet answers > /www/index.html && "
                                 f"exec httpd -f -p 127.0.0.1:{cls.hostnet_port} -h /www"),
            ], hostNetwork=True),
            manifest("hostport", [
                container("web", "mkdir -p /www && echo hostport answers > /www/index.html && "
                                 "exec httpd -f -p 80 -h /www",
                          ports=[{"containerPort": 80, "hostPort": cls.host_port,
                                  "protocol": "TCP"}]),
            ]),
            manifest("limits", [
                container("burst", forever,
                          resources={"requests": {"cpu": "100m", "memory": "32Mi"},
                                     "limits": {"cpu": "500m", "memory": "64Mi"}}),
            ]),
            manifest("guaranteed", [
                container("fixed", forever,
                          resources={"requests": {"cpu": "200m", "memory": "48Mi"},
                                     "limits": {"cpu": "200m", "memory": "48Mi"}}),
            ]),
        ]

    # ---- helpers ------------------------------------------------------------------------------

    def wait_pod(self, name, check=all_running, what="running", timeout=POD_TIMEOUT,
                 fail_fast=True):
        """Waits until kubelet reports the pod so; with `fail_fast`, gives up as soon as a
        container is stuck in an error kubelet keeps retrying."""
        def ready():
            pod = self.kubelet.pod(name)
            return pod if pod is not None and check(pod) else None

        def failed():
            return self.kubelet._died() or (fail_fast and stuck(self.kubelet.pod(name)))
        try:
            return wait_for(f"pod {name} {what}", ready, timeout, interval=0.25, failed=failed)
        except crib_lab.LabError as e:
            pod = self.kubelet.pod(name)
            self.fail(f"{e}\nkubelet's status: {pod and pod.get('status')}\n"
                      f"kubelet log:\n{self.kubelet.log_tail(25)}\ncribd log:\n"
                      f"{self.cribd.log_tail(15)}")

    def pod_log_dir(self, pod):
        meta = pod["metadata"]
        return os.path.join(lab.POD_LOG_DIR,
                            f"{meta['namespace']}_{meta['name']}_{meta['uid']}")

    def read_cri_log(self, path):
        with open(path) as f:
            lines = f.read().splitlines()
        parsed = []
        for line in lines:
            m = CRI_LOG_LINE.match(line)
            self.assertIsNotNone(m, f"{path}: not a CRI log line: {line!r}")
            parsed.append((m.group(3), m.group(4), m.group(5)))
        return parsed

    def sandbox_of(self, name):
        items = lab.sandboxes(self.cribd, self.kubelet.full_name(name), state="ready")
        self.assertEqual(len(items), 1, f"ready sandboxes of {name}: {items}")
        return items[0]

    def running_container(self, name, container_name):
        pod = self.wait_pod(name)
        cid = runtime_id(statuses(pod)[container_name]["containerID"])
        return pod, cid, lab.inspect(self.cribd, cid)

    def snapshot(self, names):
        """Sandboxes and containers of the named pods: what must not change."""
        snap = {}
        for name in names:
            pod = self.wait_pod(name)
            sandbox = self.sandbox_of(name)
            running = {s["name"]: (runtime_id(s["containerID"]), s["restartCount"])
                       for s in statuses(pod).values()}
            snap[name] = (sandbox["id"], running)
        return snap

    def runtime_view(self, names):
        """The same from crictl alone."""
        view = {}
        for name in names:
            full = self.kubelet.full_name(name)
            ready = lab.sandboxes(self.cribd, full, state="ready")
            if len(ready) != 1:
                view[name] = ("ready sandboxes", [s["id"] for s in ready])
                continue
            running = {}
            for c in lab.containers(self.cribd, pod_id=ready[0]["id"]):
                if c["state"] == "CONTAINER_RUNNING":
                    running[c["metadata"]["name"]] = (c["id"], lab.restart_count(c))
            view[name] = (ready[0]["id"], running)
        return view

    def assert_unchanged_for(self, names, before, seconds):
        """Polls crictl for `seconds`; fails at the first change."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            now = self.runtime_view(names)
            self.assertEqual(now, before, "pods or containers changed")
            time.sleep(0.5)

    def assert_kubelet_agrees(self, names, before, timeout=60):
        """kubelet reports each pod running with exactly the sandboxes and containers of
        `before` (it synced them), and the same pod IPs as the runtime."""
        for name in names:
            sandbox_id, running = before[name]

            def same(pod, running=running):
                got = {s["name"]: (runtime_id(s.get("containerID", "")), s["restartCount"])
                       for s in statuses(pod).values() if "running" in s.get("state", {})}
                return all_running(pod) and got == running
            pod = self.wait_pod(name, same, "running with the same containers", timeout)
            if not pod["spec"].get("hostNetwork"):
                ip = lab.inspectp(self.cribd, sandbox_id)["status"]["network"]["ip"]
                self.assertEqual(pod["status"].get("podIP"), ip, f"pod {name}'s IP")

    # ---- pods -----------------------------------------------------------------------------------

    def test_10_init_and_two_containers_run(self):
        pod = self.wait_pod("multi")
        init = statuses(pod, init=True)["init"]
        self.assertEqual(init["state"]["terminated"]["exitCode"], 0, init)
        self.assertEqual(init["state"]["terminated"]["reason"], "Completed", init)
        self.assertTrue(all(s["ready"] for s in statuses(pod).values()), statuses(pod))
        self.assertTrue(condition(pod, "Ready"), pod["status"])
        sandbox = self.sandbox_of("multi")
        self.assertEqual(sandbox["metadata"]["uid"], pod["metadata"]["uid"])
        names = sorted(c["metadata"]["name"] for c in
                       lab.containers(self.cribd, pod_id=sandbox["id"]))
        self.assertEqual(names, ["init", "side", "web"])

    def test_11_logs_in_cri_format_under_var_log_pods(self):
        pod = self.wait_pod("multi")
        log_dir = self.pod_log_dir(pod)
        wanted = {"init": ("stdout", "init says hello"),
                  "web": ("stdout", "web line 0"),
                  "side": ("stderr", "side to stderr")}
        for name, (stream, text) in wanted.items():
            path = os.path.join(log_dir, name, "0.log")
            wait_for(f"{text!r} in {path}",
                     lambda path=path, text=text: text in read_or_empty(path), 30)
            lines = self.read_cri_log(path)
            self.assertIn((stream, "F", text), lines, path)
        side = self.read_cri_log(os.path.join(log_dir, "side", "0.log"))
        self.assertIn(("stdout", "F", "made by init"), side)
        # kubelet parses the files itself when it serves them.
        self.assertIn("init says hello", self.kubelet.container_log("multi", "init"))
        self.assertIn("web line 0", self.kubelet.container_log("multi", "web"))
        # And links them in /var/log/containers.
        links = [n for n in os.listdir(lab.CONTAINER_LOG_DIR)
                 if n.startswith(pod["metadata"]["name"] + "_default_web-")]
        self.assertEqual(len(links), 1, links)

    def test_12_emptydir_and_hostpath_volumes(self):
        pod = self.wait_pod("multi")
        uid = pod["metadata"]["uid"]
        empty_dir = os.path.join(self.kubelet.root_dir, "pods", uid, "volumes",
                                 "kubernetes.io~empty-dir", "work")
        with open(os.path.join(empty_dir, "init-done")) as f:
            self.assertEqual(f.read(), "made by init\n")
        _, web, _ = self.running_container("multi", "web")
        out = self.cribd.crictl("exec", web, "cat", "/work/init-done").stdout
        self.assertEqual(out, "made by init\n")
        written = os.path.join(self.hostpath, "pod-file")
        wait_for(f"{written}", lambda: os.path.exists(written), 30)
        with open(written) as f:
            self.assertEqual(f.read(), "written by the pod\n")
        side = self.read_cri_log(os.path.join(self.pod_log_dir(pod), "side", "0.log"))
        self.assertIn(("stdout", "F", "written on the host"), side)

    def test_13_security_context(self):
        pod = self.wait_pod("secure")
        path = os.path.join(self.pod_log_dir(pod), "app", "0.log")
        wait_for(f"the NoNewPrivs line in {path}", lambda: "NoNewPrivs" in read_or_empty(path),
                 30)
        out = [text for _, _, text in self.read_cri_log(path)]
        self.assertIn("uid=1000 gid=3000 groups=2000,3000,4000", out)
        self.assertIn("0\t2000", out)  # a namespaced sysctl of the pod
        self.assertIn("the rootfs is read-only", out)
        # kubelet gives the emptyDir to the fsGroup (setgid); new files inherit the group.
        self.assertTrue(any(re.match(r"^drwxrwsrwx\s+\d+\s+0\s+2000\s.*/data$", t)
                            for t in out), out)
        self.assertTrue(any(re.match(r"^-\S+\s+\d+\s+1000\s+2000\s.*/data/f$", t)
                            for t in out), out)
        self.assertIn("CapEff:\t0000000000000000", out)
        self.assertIn("NoNewPrivs:\t1", out)

    def test_14_exec_through_kubelet(self):
        self.wait_pod("multi")
        out, err, status = self.kubelet.exec("multi", "web", ["sh", "-c",
                                             "cat /work/init-done; echo oops >&2"])
        self.assertEqual((out, err), ("made by init\n", "oops\n"))
        self.assertEqual(status.get("status"), "Success", status)
        out, err, status = self.kubelet.exec("multi", "web", ["sh", "-c", "exit 7"])
        self.assertEqual(status.get("status"), "Failure", status)
        self.assertEqual(status.get("reason"), "NonZeroExitCode", status)
        causes = status.get("details", {}).get("causes", [])
        self.assertIn({"reason": "ExitCode", "message": "7"}, causes, status)

    def test_14a_attach_through_kubelet(self):
        self.wait_pod("interactive")
        ws = self.kubelet.attach("interactive", "echoer")
        try:
            ws.send(0, b"hello through kubelet\n")
            out = b""
            while b"echo: hello through kubelet\n" not in out:
                message = ws.recv()
                self.assertIsNotNone(message, f"attach closed; output so far {out!r}")
                if message[0] == 1:
                    out += message[1]
        finally:
            ws.close()
        self.assertEqual(statuses(self.wait_pod("interactive"))["echoer"]["restartCount"], 0)

    def test_15_hostname_dns_and_host_aliases(self):
        pod = self.wait_pod("naming")
        path = os.path.join(self.pod_log_dir(pod), "names", "0.log")
        wait_for(f"alias.e2e in {path}", lambda: "alias.e2e" in read_or_empty(path), 30)
        out = [text for _, _, text in self.read_cri_log(path)]
        self.assertEqual(out[0], "custom-host")
        self.assertIn("nameserver 192.0.2.53", out)
        self.assertIn("search e2e.example", out)
        self.assertIn("options ndots:3", out)
        self.assertTrue(any(re.match(r"^192\.0\.2\.10\s+alias\.e2e$", t) for t in out), out)

    def test_16_shared_process_namespace(self):
        pod = self.wait_pod("shared-pid")
        second = runtime_id(statuses(pod)["second"]["containerID"])
        out = self.cribd.crictl("exec", "-s", second, "ps", "-o", "args").stdout
        self.assertIn("sleep 100001", out)  # the other container's process

    def test_17_post_start_hook(self):
        self.wait_pod("hooks")
        path = os.path.join(self.hooks_dir, "post-start")
        wait_for(f"{path}", lambda: read_or_empty(path) == "started\n", 30)

    def test_18_log_rotation_reopens_the_log(self):
        pod = self.wait_pod("chatty")
        log_dir = os.path.join(self.pod_log_dir(pod), "talker")

        def rotated():
            return sorted(n for n in os.listdir(log_dir)
                          if n.startswith("0.log.") and not n.endswith(".gz"))
        # kubelet checks sizes every 10 s, renames 0.log and asks cribd to reopen it.
        names = wait_for(f"a rotated log in {log_dir}", rotated, 60, interval=0.5)

        def numbers(path):
            return [int(t.split()[1]) for _, _, t in self.read_cri_log(path)
                    if t.startswith("line ")]
        old = numbers(os.path.join(log_dir, names[-1]))
        wait_for("lines in the reopened 0.log",
                 lambda: "line " in read_or_empty(os.path.join(log_dir, "0.log")), 30)
        new = numbers(os.path.join(log_dir, "0.log"))
        self.assertTrue(old and new, (old[-3:], new[:3]))
        self.assertGreater(new[0], old[-1], "0.log does not continue the rotated file")
        self.assertIn("line ", self.kubelet.container_log("chatty", "talker"))

    def test_19_changed_manifest_replaces_the_pod(self):
        old = self.wait_pod("mutable")
        old_sandbox = self.sandbox_of("mutable")["id"]
        pod = next(p for p in self.manifests() if p["metadata"]["name"] == "mutable")
        pod["spec"]["containers"][0]["env"][0]["value"] = "2"
        self.kubelet.put_manifest(pod)

        def replaced(p):
            return p["metadata"]["uid"] != old["metadata"]["uid"] and all_running(p)
        new = self.wait_pod("mutable", replaced, "replaced")
        path = os.path.join(self.pod_log_dir(new), "app", "0.log")
        wait_for(f"version 2 in {path}", lambda: "version 2" in read_or_empty(path), 30)
        new_sandbox = self.sandbox_of("mutable")
        self.assertNotEqual(new_sandbox["id"], old_sandbox)
        self.assertEqual(new_sandbox["metadata"]["uid"], new["metadata"]["uid"])
        # The old pod is stopped (and removed at kubelet's next garbage collection).
        wait_for("the old sandbox stopped", lambda: all(
            s["state"] == "SANDBOX_NOTREADY" for s in lab.sandboxes(self.cribd)
            if s["id"] == old_sandbox), 30)

    def test_19a_image_pull_error_reaches_kubelet(self):
        def pull_failed():
            pod = self.kubelet.pod("badimage")
            waiting = statuses(pod or {}).get("app", {}).get("state", {}).get("waiting", {})
            return waiting if waiting.get("reason") in ("ErrImagePull",
                                                        "ImagePullBackOff") else None
        waiting = wait_for("badimage's pull error", pull_failed, 60, interval=0.5)
        pod = self.kubelet.pod("badimage")
        self.assertEqual(pod["status"]["phase"], "Pending")
        # ImagePullBackOff's message names the image; cribd's own error is in kubelet's log.
        self.assertIn("no-such", waiting.get("message", ""), waiting)
        pulls = [line for line in self.kubelet.log_text().splitlines()
                 if "PullImage from image service failed" in line and "no-such" in line]
        self.assertTrue(pulls, "kubelet logged no failed PullImage")
        self.assertRegex(pulls[0], r"(?i)manifest unknown|not found", pulls[0])

    def test_20_readiness_probe(self):
        pod = self.wait_pod("probes", lambda p: all_running(p) and condition(p, "Ready"),
                            "ready")
        cid = runtime_id(statuses(pod)["probed"]["containerID"])
        self.cribd.crictl("exec", cid, "rm", "/tmp/ready")
        pod = self.wait_pod("probes", lambda p: not condition(p, "Ready"), "not ready")
        self.assertEqual(statuses(pod)["probed"]["restartCount"], 0)
        self.assertEqual(runtime_id(statuses(pod)["probed"]["containerID"]), cid)
        self.cribd.crictl("exec", cid, "touch", "/tmp/ready")
        self.wait_pod("probes", lambda p: condition(p, "Ready"), "ready again")

    def test_21_liveness_probe_restarts(self):
        pod = self.wait_pod("probes", lambda p: all_running(p) and condition(p, "Ready"),
                            "ready")
        before = statuses(pod)["probed"]
        cid = runtime_id(before["containerID"])
        self.cribd.crictl("exec", cid, "rm", "/tmp/alive")

        def restarted(p):
            s = statuses(p).get("probed", {})
            return (s.get("restartCount", 0) > before["restartCount"] and
                    "running" in s.get("state", {}) and condition(p, "Ready"))
        pod = self.wait_pod("probes", restarted, "restarted by its liveness probe")
        now = statuses(pod)["probed"]
        self.assertNotEqual(runtime_id(now["containerID"]), cid)
        self.assertEqual(runtime_id(now["lastState"]["terminated"]["containerID"]), cid)
        runtime = lab.containers(self.cribd, name="probed")
        ids = {c["id"]: c for c in runtime}
        new = ids[runtime_id(now["containerID"])]
        self.assertEqual(new["state"], "CONTAINER_RUNNING")
        self.assertEqual(lab.restart_count(new), now["restartCount"])

    def restarted_once(self, pod):
        own = statuses(pod)
        return all_running(pod) and all(
            own[n]["restartCount"] == 1 and "terminated" in own[n].get("lastState", {})
            for n in ("crash", "fallback"))

    def test_30_exited_container_restarted_with_previous_log(self):
        pod = self.wait_pod("crasher", self.restarted_once, "restarted once")
        crash = statuses(pod)["crash"]
        last = crash["lastState"]["terminated"]
        self.assertEqual(last["exitCode"], 3, last)
        self.assertEqual(last["reason"], "Error", last)
        self.assertNotEqual(last["containerID"], crash["containerID"])
        log_dir = os.path.join(self.pod_log_dir(pod), "crash")
        path = os.path.join(log_dir, "1.log")
        wait_for(f"{path} with the second run", lambda: "second run" in read_or_empty(path), 30)
        self.assertIn(("stdout", "F", "second run"), self.read_cri_log(path))
        self.assertIn(("stdout", "F", "first run"),
                      self.read_cri_log(os.path.join(log_dir, "0.log")))
        self.assertIn("first run", self.kubelet.container_log("crasher", "crash", previous=True))
        self.assertIn("second run", self.kubelet.container_log("crasher", "crash"))
        runtime = {c["id"]: c for c in lab.containers(self.cribd, name="crash")}
        current = runtime[runtime_id(crash["containerID"])]
        self.assertEqual(lab.restart_count(current), 1)
        self.assertEqual(current["state"], "CONTAINER_RUNNING")
        previous = runtime[runtime_id(last["containerID"])]
        self.assertEqual(previous["state"], "CONTAINER_EXITED")

    def test_31_termination_message_reaches_kubelet(self):
        pod = self.wait_pod("crasher", self.restarted_once, "restarted once")
        crash = statuses(pod)["crash"]["lastState"]["terminated"]
        self.assertEqual(crash.get("message"), "goodbye from crasher\n", crash)
        fallback = statuses(pod)["fallback"]["lastState"]["terminated"]
        self.assertEqual(fallback["exitCode"], 1, fallback)
        self.assertIn("last words of fallback", fallback.get("message", ""), fallback)

    def test_32_completed_pod_succeeds_and_its_sandbox_stops(self):
        def succeeded(p):
            return p.get("status", {}).get("phase") == "Succeeded"
        pod = self.wait_pod("job", succeeded, "succeeded")
        once = statuses(pod)["once"]["state"]["terminated"]
        self.assertEqual((once["exitCode"], once["reason"]), (0, "Completed"), once)
        self.assertEqual(statuses(pod)["once"]["restartCount"], 0)
        # kubelet stops the sandbox of a pod that finished; its address goes back.
        full = self.kubelet.full_name("job")
        wait_for("the job's sandbox stopped",
                 lambda: not lab.sandboxes(self.cribd, full, state="ready"), 30)
        items = lab.sandboxes(self.cribd, full)
        self.assertEqual(len(items), 1, items)
        fp = lab.Footprint(self.cribd, items[0]["id"])
        self.assertEqual(fp.allocated_ips(), [])
        self.assertEqual(fp.pids, [])
        self.assertIn(("stdout", "F", "job done"), self.read_cri_log(
            os.path.join(self.pod_log_dir(pod), "once", "0.log")))

    def test_33_oom_kill_reaches_kubelet(self):
        def failed(p):
            return p.get("status", {}).get("phase") == "Failed"
        pod = self.wait_pod("oom", failed, "failed")
        hog = statuses(pod)["hog"]["state"]["terminated"]
        self.assertEqual(hog["reason"], "OOMKilled", hog)
        self.assertEqual(hog["exitCode"], 137, hog)

    def test_40_host_network(self):
        pod, cid, info = self.running_container("hostnet", "web")
        self.assertTrue(pod["spec"]["hostNetwork"])
        body = wait_for(f"httpd on 127.0.0.1:{self.hostnet_port}",
                        lambda: http_get_or_none(self.hostnet_port), 30)
        self.assertEqual(body, "hostnet answers\n")
        pid = info["info"]["pid"]
        self.assertEqual(os.readlink(f"/proc/{pid}/ns/net"), os.readlink("/proc/self/ns/net"))
        sandbox = lab.inspectp(self.cribd, self.sandbox_of("hostnet")["id"])
        self.assertEqual(sandbox["status"]["linux"]["namespaces"]["options"]["network"], "NODE")

    def test_41_host_port(self):
        pod, cid, info = self.running_container("hostport", "web")
        pid = info["info"]["pid"]
        self.assertNotEqual(os.readlink(f"/proc/{pid}/ns/net"), os.readlink("/proc/self/ns/net"))
        body = wait_for(f"hostPort 127.0.0.1:{self.host_port}",
                        lambda: http_get_or_none(self.host_port), 30)
        self.assertEqual(body, "hostport answers\n")
        self.assertTrue(pod["status"].get("podIP"), pod["status"])

    def test_42_port_forward_through_kubelet(self):
        self.wait_pod("hostport")
        ws = self.kubelet.port_forward("hostport", 80)
        try:
            # Each channel starts with its port, little-endian.
            self.assertEqual(ws.recv(), (0, (80).to_bytes(2, "little")))
            self.assertEqual(ws.recv(), (1, (80).to_bytes(2, "little")))
            ws.send(0, b"GET / HTTP/1.0\r\n\r\n")
            data, errors = b"", b""
            while True:
                message = ws.recv()  # httpd closes after its reply, and the forward with it
                if message is None:
                    break
                if message[0] == 0:
                    data += message[1]
                else:
                    errors += message[1]
        finally:
            ws.close()
        self.assertEqual(errors, b"")
        self.assertIn(b"hostport answers", data)

    def test_43_host_pid_and_ipc_and_a_privileged_container(self):
        pod, cid, info = self.running_container("hostns", "plain")
        pid = info["info"]["pid"]
        for ns in ("pid", "ipc"):
            self.assertEqual(os.readlink(f"/proc/{pid}/ns/{ns}"),
                             os.readlink(f"/proc/self/ns/{ns}"), ns)
        self.assertNotEqual(os.readlink(f"/proc/{pid}/ns/net"), os.readlink("/proc/self/ns/net"))
        # The host's processes are visible: kubelet among them.
        out = self.cribd.crictl("exec", "-s", cid, "cat",
                                f"/proc/{self.kubelet.proc.pid}/cmdline").stdout
        self.assertIn(self.kubelet.config_path, out)
        path = os.path.join(self.pod_log_dir(pod), "priv", "0.log")
        wait_for(f"CapEff in {path}", lambda: "CapEff" in read_or_empty(path), 30)
        out = [text for _, _, text in self.read_cri_log(path)]
        with open("/proc/self/status") as f:
            own = next(line for line in f.read().splitlines() if line.startswith("CapEff"))
        self.assertIn(own, out)  # every capability root has here
        self.assertIn("kmsg", out)  # the host's devices

    def test_44_pod_in_a_user_namespace(self):
        pod, cid, info = self.running_container("userns", "app")
        sandbox = lab.inspectp(self.cribd, self.sandbox_of("userns")["id"])
        options = sandbox["status"]["linux"]["namespaces"]["options"]
        userns = options.get("usernsOptions", options.get("userns_options"))
        self.assertIsNotNone(userns, options)
        self.assertIn(userns.get("mode", 0), (0, "POD"), userns)
        uids, gids = userns["uids"], userns["gids"]
        self.assertEqual(len(uids), 1, userns)
        host = int(uids[0].get("hostId", uids[0].get("host_id", 0)))
        self.assertGreater(host, 0, userns)  # kubelet keeps the first range for the host
        self.assertEqual(int(uids[0].get("containerId", uids[0].get("container_id", 0))), 0)
        self.assertEqual(int(uids[0]["length"]), 65536)
        gid_host = int(gids[0].get("hostId", gids[0].get("host_id", 0)))
        path = os.path.join(self.pod_log_dir(pod), "app", "0.log")
        wait_for(f"'rootfs writable' in {path}", lambda: "rootfs writable" in read_or_empty(path),
                 30)
        out = [" ".join(text.split()) for _, _, text in self.read_cri_log(path)]
        self.assertEqual(out[0], f"0 {host} 65536", out)
        self.assertEqual(out[1], f"0 {gid_host} 65536", out)
        self.assertEqual(out[2], "0", out)  # root inside
        self.assertIn("image 0:0", out)  # the image's owners, through id-mapped layers
        # crib's own pod files are id-mapped: root's inside.
        self.assertEqual(out.count("pod files 0:0"), 2, out)
        # kubelet 1.26 sends its volumes (/etc/hosts, the emptyDir) without mappings and gives
        # the emptyDir's group to the pod itself: plain bind mounts, which the pod's root may
        # write.
        self.assertFalse(any("can't create" in line for line in out), out)
        # On the host, the container's root is the first id of the pod's range.
        pid = info["info"]["pid"]
        with open(f"/proc/{pid}/status") as f:
            ids = {k: v.split() for k, v in (line.split(":", 1) for line in f if ":" in line)}
        self.assertEqual(ids["Uid"], [str(host)] * 4)
        self.assertNotEqual(os.readlink(f"/proc/{pid}/ns/user"), os.readlink("/proc/self/ns/user"))
        # And what the pod's root wrote there is the pod's root's on the host.
        written = os.path.join(self.kubelet.root_dir, "pods", pod["metadata"]["uid"], "volumes",
                               "kubernetes.io~empty-dir", "data", "root-file")
        self.assertTrue(os.path.exists(written), f"{written}: {out}")
        self.assertEqual((os.stat(written).st_uid, os.stat(written).st_gid), (host, gid_host))
        # kubelet's exec joins the user namespace.
        out, _, status = self.kubelet.exec("userns", "app",
                                           ["sh", "-c", "id -u; cat /data/root-file"])
        self.assertEqual(out, "0\nby root of the pod\n", status)

    def cgroup_file(self, pid, controller, name):
        path = lab.proc_cgroup(pid, controller)
        with open(os.path.join(lab.cgroup_v1_path(controller) + path, name)) as f:
            return path, f.read().strip()

    def assert_limits(self, pod_name, container_name, qos_dir, cpu_milli, memory, shares):
        pod, cid, info = self.running_container(pod_name, container_name)
        pid = info["info"]["pid"]
        parent = self.kubelet.pod_cgroup(qos_dir, pod["metadata"]["uid"])
        path, limit = self.cgroup_file(pid, "memory", "memory.limit_in_bytes")
        self.assertTrue(path.startswith(parent), f"memory cgroup {path} not under {parent}")
        self.assertEqual(int(limit), memory)
        path, quota = self.cgroup_file(pid, "cpu", "cpu.cfs_quota_us")
        self.assertTrue(path.startswith(parent), f"cpu cgroup {path} not under {parent}")
        _, period = self.cgroup_file(pid, "cpu", "cpu.cfs_period_us")
        self.assertEqual(int(quota) * 1000 // int(period), cpu_milli)
        _, got_shares = self.cgroup_file(pid, "cpu", "cpu.shares")
        self.assertEqual(int(got_shares), shares)
        self.assertEqual(info["status"]["state"], "CONTAINER_RUNNING")

    def test_50_burstable_limits_in_kubelet_cgroup_root(self):
        # This machine has 2 MiB huge pages and no hugetlb controller: kubelet still sends a
        # zero hugepage limit per page size, which the container must survive.
        self.assert_limits("limits", "burst", "burstable", 500, 64 << 20, 102)

    def test_51_guaranteed_limits_in_kubelet_cgroup_root(self):
        self.assert_limits("guaranteed", "fixed", "", 200, 48 << 20, 204)

    def test_52_best_effort_pod_cgroup(self):
        pod, cid, info = self.running_container("multi", "web")
        path = lab.proc_cgroup(info["info"]["pid"], "memory")
        parent = self.kubelet.pod_cgroup("besteffort", pod["metadata"]["uid"])
        self.assertTrue(path.startswith(parent), f"{path} not under {parent}")

    def test_53_stats_summary(self):
        # kubelet's /stats/summary, from cribd's container stats and ImageFsInfo.
        pod = self.wait_pod("multi")

        def summary():
            doc = json.loads(self.kubelet.get("/stats/summary"))
            for p in doc.get("pods", []):
                if p["podRef"]["uid"] == pod["metadata"]["uid"]:
                    names = {c["name"] for c in p.get("containers", [])}
                    if {"web", "side"} <= names:
                        return doc, p
            return None
        doc, stats = wait_for("the multi pod in /stats/summary", summary, 60, interval=1)
        for c in stats["containers"]:
            if c["name"] not in ("web", "side"):
                continue
            self.assertGreater(c["cpu"]["usageCoreNanoSeconds"], 0, c)
            self.assertGreater(c["memory"]["workingSetBytes"], 0, c)
            self.assertIn("usedBytes", c["rootfs"], c)
            self.assertIn("usedBytes", c["logs"], c)
        image_fs = doc["node"]["runtime"]["imageFs"]
        self.assertGreater(image_fs["capacityBytes"], 0, image_fs)
        self.assertGreater(image_fs["usedBytes"], 0, image_fs)

    # ---- restarts -----------------------------------------------------------------------------

    STABLE = ("multi", "secure", "naming", "shared-pid", "hooks", "chatty", "interactive",
              "hostns", "probes", "crasher", "hostnet", "hostport", "limits", "guaranteed")

    def test_80_kubelet_restart_restarts_nothing(self):
        self.wait_pod("crasher", self.restarted_once, "restarted once")
        before = self.snapshot(self.STABLE)
        self.assertEqual(self.runtime_view(self.STABLE), before)
        self.kubelet.stop()
        self.assert_unchanged_for(self.STABLE, before, 2)
        self.kubelet.start()
        self.assert_kubelet_agrees(self.STABLE, before)
        # Two sync periods in which kubelet could act on anything it disliked.
        self.assert_unchanged_for(self.STABLE, before, 10)

    def test_81_cribd_sigkill_recreates_nothing(self):
        self.wait_pod("crasher", self.restarted_once, "restarted once")
        before = self.snapshot(self.STABLE)
        pids = {}
        for name, (_, running) in before.items():
            for cname, (cid, _) in running.items():
                pids[(name, cname)] = lab.inspect(self.cribd, cid)["info"]["pid"]
        self.cribd.kill()
        for key, pid in pids.items():
            self.assertTrue(os.path.exists(f"/proc/{pid}"), f"{key} died with cribd")
        lab.restart_cribd(self.cribd)
        self.assertEqual(self.runtime_view(self.STABLE), before)
        self.assert_kubelet_agrees(self.STABLE, before)
        self.assert_unchanged_for(self.STABLE, before, 10)
        for key, pid in pids.items():
            self.assertTrue(os.path.exists(f"/proc/{pid}"), f"{key} is gone")

    def test_82_cribd_sigkill_while_kubelet_creates_a_pod(self):
        late = manifest("late", [container(f"c{i}", "exec sleep 100000") for i in range(4)])
        self.kubelet.put_manifest(late)
        full = self.kubelet.full_name("late")
        # The sandbox is there: kubelet is now creating and starting the containers.
        wait_for("late's sandbox", lambda: lab.sandboxes(self.cribd, full), 60, interval=0.05)
        self.cribd.kill()
        lab.restart_cribd(self.cribd)
        # The calls the kill cut off failed; kubelet retries them.
        pod = self.wait_pod("late", fail_fast=False)
        sandbox = self.sandbox_of("late")
        running = [c for c in lab.containers(self.cribd, pod_id=sandbox["id"])
                   if c["state"] == "CONTAINER_RUNNING"]
        self.assertEqual(sorted(c["metadata"]["name"] for c in running),
                         ["c0", "c1", "c2", "c3"])
        self.assertEqual({runtime_id(s["containerID"]) for s in statuses(pod).values()},
                         {c["id"] for c in running})
        self.assertEqual(lab.runtime_orphans(self.cribd), [])

    # ---- removal ------------------------------------------------------------------------------

    def test_90_removed_manifests_leave_nothing(self):
        pods, footprints = {}, {}
        for file in sorted(os.listdir(self.kubelet.manifest_dir)):
            name = file[:-len(".json")]
            pods[name] = self.kubelet.pod(name)
            self.assertIsNotNone(pods[name], f"kubelet does not know {name}")
            items = lab.sandboxes(self.cribd, self.kubelet.full_name(name))
            self.assertTrue(items, f"no sandbox of {name}")
            footprints[name] = [lab.Footprint(self.cribd, i["id"]) for i in items]
            self.kubelet.remove_manifest(name)
        wait_for("kubelet forgets the pods", lambda: not self.kubelet.pods(), 60)
        # kubelet stops the pods at once and removes the sandboxes at its next garbage
        # collection (once a minute).
        wait_for("the runtime has no pod left",
                 lambda: not lab.sandboxes(self.cribd) and not lab.containers(self.cribd),
                 120, interval=1)
        for name, fps in footprints.items():
            uid = pods[name]["metadata"]["uid"]

            def gone(fps=fps, uid=uid):
                left = [item for fp in fps for item in fp.leftovers()]
                left += [f"pod cgroup {d}" for d in self.kubelet.cgroup_dirs()
                         if self.kubelet.pod_cgroup_name(uid) in d]
                return left
            try:
                wait_for(f"pod {name} gone", lambda: not gone(), 30, interval=0.5)
            except crib_lab.LabError:
                self.fail(f"pod {name} left: {gone()}")
        # cribd keeps its pin directories (netns, ipcns, utsns, userns) mount points of their own.
        pin_dirs = [os.path.join(self.cribd.state_dir, kind)
                    for kind in ("netns", "ipcns", "utsns", "userns")]
        left = [m for m in lab.mounts_containing(self.cribd.state_dir, self.cribd.root_dir)
                if m not in pin_dirs]
        self.assertEqual(left, [], "mounts left in cribd's directories")
        # kubelet ran the preStop hook before it stopped the container.
        self.assertEqual(read_or_empty(os.path.join(self.hooks_dir, "pre-stop")), "stopping\n")
        veths = os.listdir(f"/sys/class/net/{self.cribd.bridge}/brif") \
            if os.path.exists(f"/sys/class/net/{self.cribd.bridge}") else []
        self.assertEqual(veths, [], "links left on the bridge")


def main():
    return lab.run_tests("kubelet_test", CRIBD, "kubelet, cribd, cgroups, mounts",
                         "needs kubelet and crictl v1.26.1, which Debian 12 does not package: "
                         "build them (kubernetes v1.26.1 cmd/kubelet, cri-tools v1.26.1 "
                         "cmd/crictl)")


if __name__ == "__main__":
    sys.exit(main())
