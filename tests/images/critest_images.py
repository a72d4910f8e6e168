"""Stand-ins for the images cri-tools' critest v1.26.1 pulls, built from busybox-static.

build_images.py --critest pushes them under their upstream repository paths (without the
registry host), so that a registry that mirrors registry.k8s.io, gcr.io and public.ecr.aws
(and docker.io) serves critest's own names. Each stand-in behaves as its original does where
critest looks: the users and groups in /etc/passwd and /etc/group, the image's USER, the web
servers' ports and pages, nginx's process name, command line and pid file, httpd's start-up
line on stderr, the set-uid program of the no-new-privileges image.

What cannot be made: test-image-digest is pulled by the digest of upstream's manifest bytes
(critest/offline-impossible.txt says so).
"""
import os
import re
import struct
import subprocess

BUSYBOX = "/bin/busybox"

# Repository prefixes as critest names them, minus the registry host.
E2E = "e2e-test-images/"
CRI_TOOLS = "k8s-staging-cri-tools/"
ECR_LIBRARY = "docker/library/"

PASSWD = (b"root:x:0:0:root:/root:/bin/sh\n"
          b"daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
          b"bin:x:2:2:bin:/bin:/bin/false\n"
          b"sys:x:3:3:sys:/dev:/bin/false\n"
          b"sync:x:4:100:sync:/bin:/bin/sync\n"
          b"mail:x:8:8:mail:/var/spool/mail:/bin/false\n"
          b"www-data:x:33:33:www-data:/var/www:/bin/false\n"
          b"operator:x:37:37:Operator:/var:/bin/false\n"
          b"nobody:x:65534:65534:nobody:/home:/bin/false\n")
GROUP = (b"root:x:0:\ndaemon:x:1:\nbin:x:2:\nsys:x:3:\nadm:x:4:\ntty:x:5:\ndisk:x:6:\n"
         b"lp:x:7:\nmail:x:8:\nkmem:x:9:\nwheel:x:10:root\ncdrom:x:11:\ndialout:x:18:\n"
         b"floppy:x:19:\nvideo:x:28:\naudio:x:29:\ntape:x:32:\nwww-data:x:33:\n"
         b"operator:x:37:\nstaff:x:50:\nusers:x:100:\nnogroup:x:65534:\n")

# util-linux's `ipcs -m` layout from /proc/sysvipc/shm (busybox-static has no ipcs applet).
IPCS = b"""#!/bin/sh
# ipcs for critest's IPC namespace checks: the shared memory segments of this namespace.
echo
echo "------ Shared Memory Segments --------"
echo "key        shmid      owner      perms      bytes      nattch     status"
awk 'NR > 1 { printf "0x%08x %-10s %-10s %-10s %-10s %-10s\\n", $1, $2, $8, $3, $4, $7 }' \\
    /proc/sysvipc/shm
echo
"""

# procps' pgrep PATTERN, by process name (busybox-static has no pgrep applet).
PGREP = b"""#!/bin/sh
# pgrep for critest's checks: the pids of the processes whose name matches PATTERN (ERE).
[ $# -eq 1 ] || { echo "usage: pgrep PATTERN" >&2; exit 2; }
status=1
for dir in /proc/[0-9]*; do
    pid=${dir#/proc/}
    [ "$pid" = "$$" ] && continue
    read -r name < "$dir/comm" 2>/dev/null || continue
    if printf '%s\\n' "$name" | grep -Eq -- "$1"; then
        echo "$pid"
        status=0
    fi
done
exit $status
"""

NGINX_INDEX = (b"<!DOCTYPE html>\n<html>\n<head>\n<title>Welcome to nginx!</title>\n</head>\n"
               b"<body>\n<h1>Welcome to nginx!</h1>\n<p>If you see this page, the nginx web "
               b"server is successfully installed and working.</p>\n</body>\n</html>\n")

# nginx: `nginx` re-executes itself under a name that carries nginx's process title, so
# /proc/PID/cmdline reads "... nginx: master process nginx -g daemon off;" as the real master's
# does, renames its comm to "nginx" (pidof nginx finds it), writes /var/run/nginx.pid and runs
# busybox httpd as its worker.
NGINX_MASTER_TITLE = "nginx: master process nginx -g daemon off;"
NGINX_LAUNCH = b"""#!/bin/sh
# Stand-in for nginx: starts the master process under nginx's own process title.
exec "/usr/lib/nginx/%s" "$@"
""" % NGINX_MASTER_TITLE.encode()
NGINX_MASTER = b"""#!/bin/sh
# The master process of the nginx stand-in: busybox httpd serves the configured root and port.
printf nginx > /proc/$$/comm
conf=/etc/nginx/conf.d/default.conf
port=$(awk '$1 == "listen" { sub(";", "", $2); print $2; exit }' "$conf")
root=$(awk '$1 == "root" { sub(";", "", $2); print $2; exit }' "$conf")
mkdir -p /var/run /var/log/nginx
httpd -f -p "${port:-80}" -h "${root:-/usr/share/nginx/html}" &
worker=$!
echo $$ > /var/run/nginx.pid
stop() { kill "$worker" 2>/dev/null; rm -f /var/run/nginx.pid; exit 0; }
trap stop TERM INT QUIT
wait "$worker"
"""

HTTPD_FOREGROUND = b"""#!/bin/sh
# Stand-in for Apache's httpd-foreground: busybox httpd on port 80, Apache's start-up lines.
echo "AH00558: httpd: Could not reliably determine the server's fully qualified domain name," \\
     "using $(hostname). Set the 'ServerName' directive globally to suppress this message" >&2
now=$(date '+%a %b %d %H:%M:%S.000000 %Y')
echo "[$now] [mpm_event:notice] [pid $$:tid $$] AH00489: Apache/2.4.39 (Unix) configured" \\
     "-- resuming normal operations" >&2
echo "[$now] [core:notice] [pid $$:tid $$] AH00094: Command line: 'httpd -D FOREGROUND'" >&2
httpd -f -p 80 -h /usr/local/apache2/htdocs &
worker=$!
stop() { kill "$worker" 2>/dev/null; exit 0; }
trap stop TERM INT QUIT WINCH
wait "$worker"
"""


def nginx_conf(port):
    return (b"server {\n    listen       %d;\n    server_name  localhost;\n"
            b"    root   /usr/share/nginx/html;\n}\n" % port)


# x86-64 machine code: euid = geteuid(); write(1, "Effective uid: <euid>\n"); exit(0).
# The line is built backwards below the stack pointer; the prefix string follows the code.
NNP_CODE = bytes.fromhex(
    "b86b000000"        # mov $107, %eax (geteuid)
    "0f05"              # syscall
    "4889e6"            # mov %rsp, %rsi
    "48ffce"            # dec %rsi
    "c6060a"            # movb $'\n', (%rsi)
    "b90a000000"        # mov $10, %ecx
    "31d2"              # 1: xor %edx, %edx
    "f7f1"              # div %ecx
    "80c230"            # add $'0', %dl
    "48ffce"            # dec %rsi
    "8816"              # mov %dl, (%rsi)
    "85c0"              # test %eax, %eax
    "75f0"              # jnz 1b
    "b90f000000"        # mov $15, %ecx
    "488d3d36000000"    # lea prefix+15(%rip), %rdi
    "48ffcf"            # 2: dec %rdi
    "48ffce"            # dec %rsi
    "8a07"              # mov (%rdi), %al
    "8806"              # mov %al, (%rsi)
    "e2f4"              # loop 2b
    "4889e2"            # mov %rsp, %rdx
    "4829f2"            # sub %rsi, %rdx
    "bf01000000"        # mov $1, %edi
    "b801000000"        # mov $1, %eax (write)
    "0f05"              # syscall
    "31ff"              # xor %edi, %edi
    "b83c000000"        # mov $60, %eax (exit)
    "0f05"              # syscall
) + b"Effective uid: "


def static_elf(code, base=0x400000):
    """A static x86-64 ELF executable: one read+execute segment holding `code`."""
    ehsize, phsize = 64, 56
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # 64-bit, little endian, SysV
    header = ident + struct.pack("<HHIQQQIHHHHHH", 2, 0x3E, 1, base + ehsize + phsize, ehsize,
                                 0, 0, ehsize, phsize, 1, 0, 0, 0)
    size = ehsize + phsize + len(code)
    program = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, size, size, 0x1000)
    return header + program + code


def shared_libraries(binary):
    """The files a dynamic executable loads ({path in the image: host path}), from ldd."""
    out = subprocess.run(["ldd", binary], stdout=subprocess.PIPE, check=True, text=True).stdout
    libs = {}
    for line in out.splitlines():
        m = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
        if m:
            libs[m.group(1).lstrip("/")] = os.path.realpath(m.group(1))
    return libs


def busybox_layer(Layer, shell=None):
    """busybox-static with its applets as hard links (as the upstream busybox images have them:
    masking /bin/ls must not mask busybox itself), upstream's users and groups, and ipcs and
    pgrep, which busybox-static lacks. `shell`, when given, is a busybox built without
    FEATURE_SH_STANDALONE that becomes /bin/sh, so that `sh -c ls` runs /bin/ls (a masked
    /bin/ls must fail as it does upstream) instead of busybox's built-in applet."""
    layer = Layer()
    with open(BUSYBOX, "rb") as f:
        binary = f.read()
    applets = subprocess.run([BUSYBOX, "--list-full"], stdout=subprocess.PIPE, check=True,
                             text=True).stdout.split()
    dirs = {"bin", "sbin", "usr", "usr/bin", "usr/sbin", "tmp", "etc", "root", "home", "var",
            "var/run", "var/www"}
    libs = shared_libraries(shell) if shell else {}
    for lib in libs:
        parts = lib.split("/")[:-1]
        dirs.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    for d in sorted(dirs):
        layer.dir(d, 0o1777 if d == "tmp" else 0o755)
    layer.file("bin/busybox", binary, mode=0o755)
    for applet in sorted(set(applets)):
        parent = applet.rpartition("/")[0]
        if applet == "bin/busybox" or (parent and parent not in dirs):
            continue
        if shell and applet == "bin/sh":
            continue
        layer.hardlink(applet, "bin/busybox")
    if shell:
        with open(shell, "rb") as f:
            layer.file("bin/sh", f.read(), mode=0o755)
        for lib, host_path in sorted(libs.items()):
            with open(host_path, "rb") as f:
                layer.file(lib, f.read(), mode=0o755)
    layer.file("etc/passwd", PASSWD)
    layer.file("etc/group", GROUP)
    layer.file("usr/bin/ipcs", IPCS, mode=0o755)
    layer.file("usr/bin/pgrep", PGREP, mode=0o755)
    return layer.tar_bytes()


def build(builder, only, layer_class, shell=None):
    """Pushes the stand-ins. `shell`: see busybox_layer."""
    Layer = layer_class
    busybox = (busybox_layer(Layer, shell), "gzip")

    def want(name):
        return only is None or name in only

    def layer(build_fn):
        lay = Layer()
        build_fn(lay)
        return (lay.tar_bytes(), "gzip")

    base = [busybox]

    def marker(text):
        return layer(lambda lay: (lay.dir("etc"), lay.file("etc/critest-image", text.encode())))

    def image(name, layers, **kwargs):
        if want(name):
            builder.image(name, layers, **kwargs)

    def same_image(names, layers, **kwargs):
        """One manifest under several tags of one repository."""
        names = [n for n in names if want(n)]
        if not names:
            return
        builder.image(names[0], layers, **kwargs)
        first = builder.result[names[0]]
        for name in names[1:]:
            repo, tag = name.split(":")
            data, media_type, _ = builder.manifest(repo, layers, **kwargs)
            builder.registry.push_manifest(repo, tag, data, media_type)
            builder.result[name] = dict(first)

    # registry.k8s.io/e2e-test-images
    image(E2E + "busybox:1.29-2", base)

    def nginx(lay, port=80):
        for d in ("usr/sbin", "usr/lib", "usr/lib/nginx", "usr/share", "usr/share/nginx",
                  "usr/share/nginx/html", "etc/nginx", "etc/nginx/conf.d", "var/log",
                  "var/log/nginx", "var/cache", "var/cache/nginx"):
            lay.dir(d)
        lay.file("usr/sbin/nginx", NGINX_LAUNCH, mode=0o755)
        lay.file("usr/lib/nginx/" + NGINX_MASTER_TITLE, NGINX_MASTER, mode=0o755)
        lay.file("etc/nginx/conf.d/default.conf", nginx_conf(port))
        lay.file("usr/share/nginx/html/index.html", NGINX_INDEX)

    nginx_args = dict(cmd=("nginx", "-g", "daemon off;"), stop_signal="SIGTERM")
    image(E2E + "nginx:1.14-2", base + [layer(nginx)], **nginx_args)

    def httpd(lay):
        for d in ("usr/local", "usr/local/bin", "usr/local/apache2",
                  "usr/local/apache2/htdocs"):
            lay.dir(d)
        lay.file("usr/local/bin/httpd-foreground", HTTPD_FOREGROUND, mode=0o755)
        lay.file("usr/local/apache2/htdocs/index.html",
                 b"<html><body><h1>It works!</h1></body></html>\n")

    image(E2E + "httpd:2.4.39-4", base + [layer(httpd)], cmd=("httpd-foreground",),
          env=("PATH=/usr/local/apache2/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
               "/sbin:/bin",), workdir="/usr/local/apache2")

    def nnp(lay):
        for d in ("usr/local", "usr/local/bin"):
            lay.dir(d)
        lay.file("usr/local/bin/nnp", static_elf(NNP_CODE), mode=0o4755)

    image(E2E + "nonewprivs:1.3", base + [layer(nnp)], cmd=("/usr/local/bin/nnp",))

    # gcr.io/k8s-staging-cri-tools
    for n in (1, 2, 3):
        image(f"{CRI_TOOLS}test-image-{n}:latest", base + [marker(f"test-image-{n}\n")])
    image(CRI_TOOLS + "test-image-latest:latest", base + [marker("test-image-latest\n")])
    image(CRI_TOOLS + "test-image-tag:test", base + [marker("test-image-tag:test\n")])
    image(CRI_TOOLS + "test-image-tag:all", base + [marker("test-image-tag:all\n")])
    same_image([f"{CRI_TOOLS}test-image-tags:{n}" for n in (1, 2, 3)],
               base + [marker("test-image-tags\n")])
    image(CRI_TOOLS + "test-image-user-uid:latest", base, user="1002")
    image(CRI_TOOLS + "test-image-user-username:latest", base, user="www-data")
    image(CRI_TOOLS + "test-image-user-uid-group:latest", base, user="1003:1003")
    image(CRI_TOOLS + "test-image-user-username-group:latest", base, user="www-data:www-data")

    def predefined_group(lay):
        lay.dir("etc")
        lay.file("etc/passwd", PASSWD + b"default-user:x:1000:1000:Linux User,,,:"
                                        b"/home/default-user:/bin/sh\n")
        lay.file("etc/group", GROUP + b"default-user:x:1000:\n"
                                      b"group-defined-in-image:x:50000:default-user\n")
        lay.dir("home")
        lay.dir("home/default-user")

    image(CRI_TOOLS + "test-image-predefined-group:latest", base + [layer(predefined_group)],
          user="1000")
    image(CRI_TOOLS + "hostnet-nginx-amd64:latest",
          base + [layer(lambda lay: nginx(lay, port=12003))], **nginx_args)

    # public.ecr.aws/docker/library: the image-listing benchmark's busybox variants.
    same_image([ECR_LIBRARY + "busybox:1", ECR_LIBRARY + "busybox:1-uclibc"],
               base + [marker("busybox uclibc\n")])
    same_image([ECR_LIBRARY + "busybox:1-glibc", ECR_LIBRARY + "busybox:1.35.0-glibc"],
               base + [marker("busybox glibc\n")])
    image(ECR_LIBRARY + "busybox:1-musl", base + [marker("busybox musl\n")])
