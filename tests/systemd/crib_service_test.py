#!/usr/bin/env python3
"""cribd as the systemd service of etc/crib.service, under the lab's real systemd:
- Type=notify: `systemctl start` returns once the CRI socket serves (no polling needed);
- KillMode=process: a restart of the service stops cribd alone; a pod's crib-pause runs on and
  the new cribd finds the pod ready again;
- `systemctl stop` stops cribd gracefully (the socket is removed) and the pod still runs;
- with cgroup_driver systemd, crib is ready only because this systemd answers.
Needs crictl from ../shared/k8s-node-tools; exit 77 (skipped) without it, or without systemd.

usage: crib_service_test.py CRIBD"""

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
import systemd_lab  # noqa: E402

UNIT = "crib-test.service"


def crictl_path():
    unpack = REPO.parent / "shared" / "k8s-node-tools" / "unpack"
    if not unpack.exists():
        return None
    out = subprocess.run([str(unpack)], capture_output=True, text=True)
    if out.returncode != 0:
        return None
    path = pathlib.Path(out.stdout.strip().splitlines()[-1]) / "crictl"
    return path if path.exists() else None


def serves(sock):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(sock)
        return True
    except OSError:
        return False
    finally:
        s.close()


def main(cribd):
    crictl = crictl_path()
    if crictl is None:
        print("skipped: crictl from ../shared/k8s-node-tools is missing")
        return 77
    if not os.path.exists("/lib/systemd/systemd"):
        print("skipped: Debian's systemd is not installed")
        return 77
    work = pathlib.Path(tempfile.mkdtemp(prefix="crib-service-test-"))
    state = work / "lab"
    state.mkdir()
    sock = str(work / "state" / "crib.sock")
    started = False
    try:
        assert systemd_lab.start(str(state), "crib-lab-svc-%d" % os.getpid()) == 0
        started = True
        exec_start = "%s --root %s --state %s --socket %s --cgroup-driver systemd" % (
            cribd, work / "root", work / "state", sock)
        unit = (REPO / "etc" / "crib.service").read_text().replace("@CRIBD@", exec_start)
        (state / "units" / UNIT).write_text(unit)

        def ctl(*args, check=True):
            return systemd_lab.entered(str(state), ["systemctl"] + list(args), check=check,
                                       capture_output=True, text=True)

        def show(prop):
            return ctl("show", "-p", prop, "--value", UNIT).stdout.strip()

        def cri(*args):
            out = systemd_lab.entered(
                str(state), [str(crictl), "--runtime-endpoint", "unix://" + sock, "--timeout",
                             "20s"] + list(args), capture_output=True, text=True)
            assert out.returncode == 0, "crictl %s: %s" % (" ".join(args), out.stderr)
            return out.stdout

        ctl("daemon-reload")
        ctl("start", UNIT)
        # Type=notify: started means serving, at once.
        assert serves(sock), "systemctl start returned before the socket served"
        assert show("ActiveState") == "active", show("ActiveState")
        first_pid = show("MainPID")
        print("crib-test.service active, cribd pid %s (in the lab)" % first_pid)
        conditions = {c["type"]: c for c in json.loads(cri("info"))["status"]["conditions"]}
        assert conditions["RuntimeReady"]["status"] is True, conditions["RuntimeReady"]

        pod_config = work / "pod.json"
        pod_config.write_text(json.dumps({
            "metadata": {"name": "service-pod", "namespace": "default", "uid": "svc-1"},
            "linux": {"security_context": {"namespace_options": {"network": 2}}},
            "log_directory": str(work / "logs")}))
        pod = cri("runp", str(pod_config)).strip()
        assert pod, "no pod id"

        # KillMode=process: the restart stops cribd alone; the pod's crib-pause runs on.
        ctl("restart", UNIT)
        assert serves(sock)
        assert show("MainPID") != first_pid, "the restart kept the same cribd"
        inspected = json.loads(cri("inspectp", pod))
        assert inspected["status"]["state"] == "SANDBOX_READY", inspected["status"]["state"]
        print("after a restart of the service the pod is still ready")

        # A graceful stop removes the socket and leaves the pod running.
        ctl("stop", UNIT)
        assert show("ActiveState") == "inactive", show("ActiveState")
        assert not os.path.exists(sock), "the socket stayed after the stop"
        ctl("start", UNIT)
        inspected = json.loads(cri("inspectp", pod))
        assert inspected["status"]["state"] == "SANDBOX_READY", inspected["status"]["state"]
        cri("stopp", pod)
        cri("rmp", pod)
        ctl("stop", UNIT)
        print("ok: Type=notify readiness, KillMode=process across a restart, graceful stop")
        return 0
    finally:
        if started:
            systemd_lab.entered(str(state), ["systemctl", "stop", UNIT], capture_output=True)
            assert systemd_lab.stop(str(state)) == 0, "the lab's cgroups stayed"
        with open("/proc/self/mountinfo") as f:
            left = [line for line in f if str(work) in line]
        subprocess.run(["umount", "-R"] + [line.split()[4] for line in left], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
        assert not left, "mounts left: %s" % left


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("skipped: needs root")
        sys.exit(77)
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(os.path.abspath(sys.argv[1])))
