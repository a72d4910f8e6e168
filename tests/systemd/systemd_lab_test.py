#!/usr/bin/env python3
"""The systemd lab (systemd_lab.py) works on this machine and leaves nothing behind: systemd
comes up, a transient scope in a kubelet-style slice gets real cgroups with its limits, stopping
the unit removes them, and stopping the lab removes its cgroups, processes and mounts.
Exit 77 (skipped) when Debian's systemd or dbus is not installed."""

import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import systemd_lab  # noqa: E402

SLICE_PATH = "kubepods.slice/kubepods-besteffort.slice"
UNIT = "crib-lab-check.scope"


def wait_for(what, check, timeout_s=10):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def limit_files(tag):
    """The files that hold the scope's memory and pids limits on this machine's layout."""
    files = {}
    for point, fstype, options in systemd_lab.hierarchies():
        scope = pathlib.Path(point) / tag / SLICE_PATH / UNIT
        opts = options.split(",")
        if fstype == "cgroup" and "memory" in opts:
            files["memory"] = scope / "memory.limit_in_bytes"
        if fstype == "cgroup" and "pids" in opts:
            files["pids"] = scope / "pids.max"
        if fstype == "cgroup2":
            controllers = pathlib.Path(point) / "cgroup.controllers"
            available = controllers.read_text().split() if controllers.exists() else []
            if "memory" in available:
                files.setdefault("memory", scope / "memory.max")
            if "pids" in available:
                files.setdefault("pids", scope / "pids.max")
    return files


def main():
    for tool in ("/lib/systemd/systemd", "/usr/bin/dbus-daemon", "/usr/bin/systemd-run"):
        if not os.path.exists(tool):
            print("skipped: %s is not installed (Debian's systemd and dbus)" % tool)
            return 77
    state = tempfile.mkdtemp(prefix="crib-systemd-lab-")
    tag = "crib-lab-test-%d" % os.getpid()
    marker = "31%d" % os.getpid()  # a sleep nobody else runs
    started = False
    try:
        assert systemd_lab.start(state, tag) == 0, "the lab did not start"
        started = True
        run = subprocess.Popen(
            ["python3", str(HERE / "systemd_lab.py"), "enter", state, "systemd-run",
             "--unit=" + UNIT, "--slice=kubepods-besteffort.slice", "--scope",
             "-p", "MemoryMax=64M", "-p", "TasksMax=20", "sleep", marker],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def active():
            r = systemd_lab.entered(state, ["systemctl", "is-active", UNIT], capture_output=True,
                                    text=True)
            return r.stdout.strip() == "active"

        wait_for(UNIT + " to be active", active)
        files = limit_files(tag)
        assert "memory" in files and "pids" in files, "no memory or pids controller: %s" % files
        assert files["memory"].read_text().strip() == str(64 << 20), files["memory"]
        assert files["pids"].read_text().strip() == "20", files["pids"]
        print("limits in the scope's cgroup: %s" % ", ".join(str(f) for f in files.values()))

        systemd_lab.entered(state, ["systemctl", "stop", UNIT], check=True)
        run.wait(timeout=10)
        wait_for("the scope's cgroups to go",
                 lambda: not any(f.parent.exists() for f in files.values()))
    finally:
        if started or (pathlib.Path(state) / "tag").exists():
            assert systemd_lab.stop(state) == 0, "the lab's cgroups stayed"
        left_cgroups = [str(d) for d in systemd_lab.cgroup_dirs(tag) if d.exists()]
        left_procs = subprocess.run(["pgrep", "-f", "sleep " + marker],
                                    capture_output=True, text=True).stdout.split()
        with open("/proc/self/mountinfo") as f:
            left_mounts = [line for line in f if state in line]
        shutil.rmtree(state, ignore_errors=True)
    assert not left_cgroups, "cgroups left: %s" % left_cgroups
    assert not left_procs, "processes left: %s" % left_procs
    assert not left_mounts, "mounts left: %s" % left_mounts
    print("ok: systemd lab started, scope limits enforced in its cgroups, nothing left")
    return 0


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("skipped: needs root")
        sys.exit(77)
    sys.exit(main())
