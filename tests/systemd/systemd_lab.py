#!/usr/bin/env python3
"""A real systemd for tests, on a machine whose init is not systemd.

systemd (Debian's, with its own dbus-daemon as the system bus) runs as pid 1 of new pid, mount,
cgroup, uts and net namespaces, on a root made of read-only bind mounts, with a few units of its
own and nothing of the host's. Its cgroups live under a private cgroup, <tag>, in every hierarchy
the host mounts (read from /proc/self/mountinfo: v1, hybrid or v2), so what it creates is real
and its limits are enforced, and removing <tag> removes everything.

    systemd_lab.py start STATE [TAG]   start, wait until systemd runs and the bus answers
    systemd_lab.py enter STATE CMD...  run CMD in its namespaces and cgroup (systemd reads the
                                       pids it is sent in its own pid namespace)
    systemd_lab.py stop STATE          stop every unit, end systemd, remove <tag>
    systemd_lab.py run CMD...          start a lab of its own, run CMD in it, stop it; CMD's
                                       exit code (1 when the lab did not start or stop clean)

STATE is a directory of the host that stays visible inside (under /tmp, /root, /work, ...).
systemd logs to STATE/console.log; CRIB_LAB_LOG_LEVEL=debug makes it say what it does to each
unit and cgroup, and CRIB_LAB_KEEP_LOG=PATH keeps a `run`'s log as PATH.<pid>.
"""

import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 10

# The units systemd may start: a target that pulls in the bus, stubs for the targets systemd
# itself asks for, and a service whose success ends systemd.
UNITS = {
    "crib-lab.target": "[Unit]\nDescription=crib test systemd\nDefaultDependencies=no\n"
                       "Wants=dbus.socket dbus.service\n",
    "sysinit.target": "[Unit]\nDefaultDependencies=no\n",
    "basic.target": "[Unit]\nDefaultDependencies=no\n",
    "sockets.target": "[Unit]\nDefaultDependencies=no\n",
    "shutdown.target": "[Unit]\nDefaultDependencies=no\n",
    "crib-lab-exit.service": "[Unit]\nDefaultDependencies=no\nRequires=shutdown.target\n"
                             "After=shutdown.target\nSuccessAction=exit-force\n"
                             "[Service]\nType=oneshot\nExecStart=/bin/true\n",
    "dbus.socket": "[Unit]\nDefaultDependencies=no\n[Socket]\n"
                   "ListenStream=/run/dbus/system_bus_socket\n",
    "dbus.service": "[Unit]\nDefaultDependencies=no\nRequires=dbus.socket\n"
                    "[Service]\nType=notify\nNotifyAccess=main\n"
                    "ExecStart=/usr/bin/dbus-daemon --config-file={state}/bus.conf "
                    "--address=systemd: --nofork --nopidfile\n",
}

# A system bus that lets root call systemd and activates nothing.
BUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <user>messagebus</user>
  <auth>EXTERNAL</auth>
  <listen>unix:path=/run/dbus/system_bus_socket</listen>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <allow send_type="method_call" send_destination="org.freedesktop.DBus"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
  </policy>
  <include>/usr/share/dbus-1/system.d/org.freedesktop.systemd1.conf</include>
</busconfig>
"""


def hierarchies():
    """(mount point, fstype, super options) of each cgroup hierarchy the host mounts."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            point = left.split()[4]
            fstype, _source, options = right.split()[:3]
            if fstype in ("cgroup", "cgroup2") and point.startswith("/sys/fs/cgroup"):
                out.append((point, fstype, options))
    return out


def cgroup_dirs(tag):
    return [pathlib.Path(point) / tag for point, _, _ in hierarchies()]


def run(*argv, check=True, **kwargs):
    return subprocess.run(list(argv), check=check, **kwargs)


def entered(state, argv, **kwargs):
    """argv run inside the lab's namespaces, moved into the root of its cgroup namespace first
    (a process left in the host's cgroups would show up in systemd's root as a pid it cannot
    see)."""
    pid = (pathlib.Path(state) / "systemd.pid").read_text().strip()
    # Then the caller's working directory, where the lab's root has it too.
    move = ("for p in %s; do echo 0 > $p/cgroup.procs || exit 125; done; "
            "cd \"$0\" 2>/dev/null || cd /; exec \"$@\"") % " ".join(
                point for point, _, _ in hierarchies())
    return subprocess.run(["nsenter", "-t", pid, "-m", "-p", "-C", "-u", "-n", "sh", "-c", move,
                           os.getcwd()] + list(argv), **kwargs)


def ready(state):
    if not (pathlib.Path(state) / "systemd.pid").exists():
        return False
    status = entered(state, ["systemctl", "is-system-running"], capture_output=True, text=True)
    if status.stdout.strip() != "running":
        return False
    bus = entered(state, ["busctl", "--system", "status", "org.freedesktop.systemd1"],
                  capture_output=True)
    return bus.returncode == 0


def start(state, tag):
    state = pathlib.Path(state).resolve()
    (state / "units").mkdir(parents=True, exist_ok=True)
    for name, text in UNITS.items():
        (state / "units" / name).write_text(text.format(state=state))
    (state / "bus.conf").write_text(BUS_CONF)
    (state / "tag").write_text(tag)
    (state / "systemd.pid").unlink(missing_ok=True)
    for point, _, options in hierarchies():
        d = pathlib.Path(point) / tag
        d.mkdir()
        if "cpuset" in options.split(","):  # a new cpuset level starts empty: no task may join
            for f in ("cpuset.cpus", "cpuset.mems"):
                (d / f).write_text((pathlib.Path(point) / f).read_text())
    # systemd's console must be a terminal: script gives it one and logs it.
    inner = [sys.executable, str(pathlib.Path(__file__).resolve()), "inner", str(state)]
    command = "unshare --pid --fork --kill-child=SIGKILL --mount --uts --net " \
              "--propagation private " + " ".join(inner)
    subprocess.Popen(["setsid", "script", "-qfec", command, str(state / "console.log")],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + START_TIMEOUT_S
    began = time.monotonic()
    while time.monotonic() < deadline:
        if ready(state):
            print("systemd runs (host pid %s) after %.1f s" % (
                (state / "systemd.pid").read_text().strip(), time.monotonic() - began))
            return 0
        time.sleep(0.05)
    print("systemd did not come up; see %s" % (state / "console.log"), file=sys.stderr)
    stop(state)
    return 1


def inner(state):
    """pid 1 of the new pid namespace: into <tag>, then a cgroup namespace rooted there."""
    state = pathlib.Path(state)
    tag = (state / "tag").read_text()
    with open("/proc/self/stat") as f:  # the host's /proc is still mounted: the host pid
        (state / "systemd.pid").write_text(f.read().split()[0])
    for point, _, _ in hierarchies():
        (pathlib.Path(point) / tag / "cgroup.procs").write_text("0")
    # Only now a cgroup namespace: its root holds nothing but this process, and then systemd.
    os.execv("/usr/bin/unshare", ["unshare", "--cgroup", sys.executable,
                                  str(pathlib.Path(__file__).resolve()), "inner-root", str(state)])


def inner_root(state):
    """Still pid 1, in the cgroup namespace: a root of read-only binds, the hierarchies seen from
    the namespace, then exec systemd."""
    state = pathlib.Path(state)
    found = hierarchies()
    root = state / "root"
    root.mkdir(exist_ok=True)
    run("mount", "--make-rprivate", "/")
    run("mount", "-t", "tmpfs", "-o", "mode=755", "crib-lab-root", str(root))
    for entry in sorted(pathlib.Path("/").iterdir()):
        name = entry.name
        if name in ("proc", "sys", "dev", "run", "lost+found"):
            (root / name).mkdir()
        elif entry.is_symlink():
            os.symlink(os.readlink(entry), root / name)
        elif entry.is_dir():
            (root / name).mkdir()
            run("mount", "--bind", str(entry), str(root / name))
    for name in ("usr", "etc"):
        run("mount", "-o", "remount,bind,ro", str(root / name))
    run("mount", "--bind", "/dev", str(root / "dev"))
    run("mount", "-o", "remount,bind,ro", str(root / "dev"))
    run("mount", "-t", "tmpfs", "-o", "mode=1777,nosuid,nodev", "shm", str(root / "dev/shm"))
    run("mount", "-t", "devpts", "-o", "newinstance,ptmxmode=0666,mode=620", "devpts",
        str(root / "dev/pts"))
    console = os.ttyname(0) if os.isatty(0) else ""
    if console:
        run("mount", "--bind", console, str(root / "dev/console"))
    run("mount", "-t", "tmpfs", "-o", "mode=755,nosuid,nodev", "run", str(root / "run"))
    (root / ".old").mkdir()
    os.chdir(root)
    run("pivot_root", ".", ".old")
    os.chdir("/")
    run("mount", "-t", "proc", "-o", "nosuid,nodev,noexec", "proc", "/proc")
    run("umount", "-l", "/.old")
    os.rmdir("/.old")
    # Writable, unlike a container's: crib sets bridge ports' hairpin mode through sysfs (of
    # the lab's own network namespace).
    run("mount", "-t", "sysfs", "-o", "nosuid,nodev,noexec", "sysfs", "/sys")
    run("mount", "-t", "tmpfs", "-o", "mode=755,nosuid,nodev,noexec", "cgroup", "/sys/fs/cgroup")
    # The same hierarchies again, now seen from the cgroup namespace (rooted at <tag>).
    for point, fstype, options in found:
        if point == "/sys/fs/cgroup" and fstype == "cgroup2":  # v2 throughout
            run("umount", "/sys/fs/cgroup")
        else:
            os.makedirs(point, exist_ok=True)
        keep = [o for o in options.split(",") if o not in ("rw", "ro")]
        if fstype == "cgroup" and all(o.startswith("name=") or o == "xattr" for o in keep):
            keep.insert(0, "none")  # a named hierarchy without controllers
        run("mount", "-t", fstype, "-o", ",".join(["nosuid", "nodev", "noexec"] + keep), fstype,
            point)
    pathlib.Path("/run/lock").mkdir(parents=True, exist_ok=True)
    env = {"container": "crib-test", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
           "SYSTEMD_UNIT_PATH": "/run/systemd/system.control:/run/systemd/transient:%s/units"
                                % state}
    # No modprobe and no clock setting from inside.
    os.execve("/usr/bin/setpriv", [
        "setpriv", "--bounding-set", "-sys_module,-sys_time", "--", "/lib/systemd/systemd",
        "--system", "--unit=crib-lab.target", "--log-target=console",
        "--log-level=" + os.environ.get("CRIB_LAB_LOG_LEVEL", "info"), "--show-status=no"], env)


def alive(pid):
    try:
        with open("/proc/%s/stat" % pid) as f:
            return f.read().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def stop(state):
    state = pathlib.Path(state)
    tag = (state / "tag").read_text() if (state / "tag").exists() else ""
    pid_file = state / "systemd.pid"
    pid = pid_file.read_text().strip() if pid_file.exists() else ""
    if pid and alive(pid):
        entered(state, ["systemctl", "start", "--no-block", "crib-lab-exit.service"],
                capture_output=True)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if alive(pid):
            print("systemd did not exit: SIGKILL", file=sys.stderr)
            os.kill(int(pid), 9)
    if not tag:
        return 0
    # Deepest first; a group whose last task is still exiting needs another try.
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while True:
        left = []
        for top in cgroup_dirs(tag):
            if not top.exists():
                continue
            for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                try:
                    d.rmdir()
                except OSError:
                    pass
            try:
                top.rmdir()
            except OSError:
                left.append(str(top))
        if not left:
            return 0
        if time.monotonic() > deadline:
            print("cgroups left: %s" % ", ".join(left), file=sys.stderr)
            return 1
        time.sleep(0.05)


def run_in_lab(argv):
    state = tempfile.mkdtemp(prefix="crib-systemd-lab-")
    try:
        if start(state, "crib-lab-%d" % os.getpid()) != 0:
            return 1
        code = entered(state, argv).returncode
        if stop(state) != 0:
            return 1
        return code
    finally:
        if (pathlib.Path(state) / "systemd.pid").exists():
            stop(state)
        keep = os.environ.get("CRIB_LAB_KEEP_LOG")
        if keep and (pathlib.Path(state) / "console.log").exists():
            shutil.copy(pathlib.Path(state) / "console.log", "%s.%d" % (keep, os.getpid()))
        shutil.rmtree(state, ignore_errors=True)


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    if argv[1] == "run":
        return run_in_lab(argv[2:])
    command, state = argv[1], argv[2]
    if command == "start":
        return start(state, argv[3] if len(argv) > 3 else "crib-lab-%d" % os.getpid())
    if command == "inner":
        inner(state)
    if command == "inner-root":
        inner_root(state)
    if command == "enter":
        return entered(state, argv[3:]).returncode
    if command == "stop":
        return stop(state)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
