/* crib-pause: the process of a pod that shares its process namespace. cribd starts it once
 * for such a pod; it joins the pod's pinned network, ipc and uts namespaces, makes the pod's
 * pid namespace, joins the pod's cgroup, reports to cribd on fd 3 and then waits for SIGTERM
 * as pid 1 of that namespace, reaping zombies. (The pins hold the other namespaces, the
 * hostname and the sysctls: a pod that shares no process namespace has no crib-pause.) It must
 * stay tiny: no C++, no allocation beyond the stack, linked statically. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pod/pause/protocol.h"

static struct crib_pause_report report;

static void Report(int code, pid_t pid) {
  report.code = code;
  report.pid = pid;
  ssize_t n;
  do {
    n = write(CRIB_PAUSE_REPORT_FD, &report, sizeof(report));
  } while (n < 0 && errno == EINTR);
}

static void Fail(int err, const char* what, const char* object) {
  char reason[128];
  snprintf(reason, sizeof(reason), "%s", err > 0 ? strerror(err) : "failed");
  if (reason[0] >= 'A' && reason[0] <= 'Z') reason[0] = (char)(reason[0] - 'A' + 'a');
  snprintf(report.message, sizeof(report.message), "%s%s%s: %s", what, object ? " " : "",
           object ? object : "", reason);
  Report(err ? err : -1, 0);
  _exit(1);
}

static void OnTerm(int sig) {
  (void)sig;
  _exit(0);
}

static void OnChild(int sig) { (void)sig; }

/* The ranges to drop from the page tables before waiting: this executable's pages that were
 * never written (code, read-only data; smaps shows no Anonymous pages in them, unlike the
 * relocated RELRO pages), and the stack's lowest address in *stack_low. Returns their number. */
struct range {
  unsigned long start, end;
};
static int CleanRanges(struct range* ranges, int max, unsigned long* stack_low) {
  char exe[PATH_MAX];
  const ssize_t exe_len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (exe_len <= 0) return 0;
  exe[exe_len] = '\0';
  const int fd = open("/proc/self/smaps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  int count = 0;
  int candidate = 0; /* the last mapping header named the executable, not writable */
  unsigned long start = 0, end = 0;
  char buf[4096], line[PATH_MAX + 128];
  size_t used = 0;
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) {
    for (ssize_t i = 0; i < n; ++i) {
      if (buf[i] != '\n') {
        if (used < sizeof(line) - 1) line[used++] = buf[i];
        continue;
      }
      line[used] = '\0';
      used = 0;
      /* A mapping: "start-end perms offset dev inode path"; then "Key: value kB" lines. */
      char perms[5];
      int path_at = 0;
      unsigned long from, to, kib;
      if (sscanf(line, "%lx-%lx %4s %*s %*s %*s %n", &from, &to, perms, &path_at) >= 3 &&
          path_at > 0) {
        start = from;
        end = to;
        candidate = perms[1] == '-' && strcmp(line + path_at, exe) == 0;
        if (strcmp(line + path_at, "[stack]") == 0) *stack_low = from;
      } else if (candidate && sscanf(line, "Anonymous: %lu kB", &kib) == 1) {
        if (kib == 0 && count < max) {
          ranges[count].start = start;
          ranges[count].end = end;
          ++count;
        }
        candidate = 0;
      }
    }
  }
  close(fd);
  return count;
}

#if defined(__x86_64__)
/* madvise and pause without calling into libc: the wait then touches no page but main's. */
static inline long RawSyscall(long nr, long a, long b, long c) {
  long ret;
  __asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
  return ret;
}
#define CRIB_MADVISE(start, length) \
  RawSyscall(SYS_madvise, (long)(start), (long)(length), MADV_DONTNEED)
#define CRIB_PAUSE() RawSyscall(SYS_pause, 0, 0, 0)
#else
#define CRIB_MADVISE(start, length) madvise((void*)(start), (length), MADV_DONTNEED)
#define CRIB_PAUSE() pause()
#endif

/* Joins the namespace pinned at `path`. */
static void Join(const char* path, int nstype, const char* what) {
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) Fail(errno, what, path);
  if (setns(fd, nstype) != 0) Fail(errno, "setns", path);
  close(fd);
}

int main(int argc, char** argv) {
  const char* netns = NULL;
  const char* ipcns = NULL;
  const char* utsns = NULL;
  const char* userns = NULL;
  int flags = 0;
  for (int i = 1; i < argc; ++i) {
    const char* arg = argv[i];
    if (strcmp(arg, "--netns") == 0 && i + 1 < argc) {
      netns = argv[++i];
    } else if (strcmp(arg, "--ipcns") == 0 && i + 1 < argc) {
      ipcns = argv[++i];
    } else if (strcmp(arg, "--utsns") == 0 && i + 1 < argc) {
      utsns = argv[++i];
    } else if (strcmp(arg, "--userns") == 0 && i + 1 < argc) {
      userns = argv[++i];
    } else if (strcmp(arg, "--pid") == 0) {
      flags |= CLONE_NEWPID;
    } else if (strcmp(arg, "--cgroup-join") == 0 && i + 1 < argc) {
      ++i; /* applied below, once forked */
    } else if (strcmp(arg, "--pod") == 0 && i + 1 < argc) {
      ++i; /* the pod's directory: only for finding this process and its cribd again */
    } else {
      Fail(EINVAL, "unknown argument", arg);
    }
  }

  if (netns != NULL) Join(netns, CLONE_NEWNET, "open network namespace");
  if (ipcns != NULL) Join(ipcns, CLONE_NEWIPC, "open ipc namespace");
  if (utsns != NULL) Join(utsns, CLONE_NEWUTS, "open uts namespace");
  /* Into the pod's cgroup while still the host's root, and before the fork: a cribd killed at
   * any moment leaves no pause process that its cgroup does not hold. */
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--cgroup-join") != 0) continue;
    const char* join = argv[++i];
    const int fd = open(join, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "0", 1) < 0) Fail(errno, "join cgroup", join);
    close(fd);
  }
  /* Last, so that the pid namespace below belongs to the pod's user namespace; the pod's
   * root there, not the host's. */
  if (userns != NULL) {
    Join(userns, CLONE_NEWUSER, "open user namespace");
    if (setresgid(0, 0, 0) != 0 || setresuid(0, 0, 0) != 0)
      Fail(errno, "become the pod's root", NULL);
  }
  if (flags != 0 && unshare(flags) != 0) Fail(errno, "unshare pid namespace", NULL);

  /* Handlers before the fork, so that the child never runs with SIGTERM at its default: as
   * pid 1 of a pid namespace it would then ignore SIGTERM sent from the host. */
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = OnTerm;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sa.sa_handler = OnChild;
  sa.sa_flags = SA_NOCLDSTOP;
  sigaction(SIGCHLD, &sa, NULL);
  if (setsid() < 0) Fail(errno, "setsid", NULL);
  if (chdir("/") != 0) Fail(errno, "chdir", "/");

  /* The child holds the namespaces (it is pid 1 of the new pid namespace, if any) and is
   * detached from cribd: this process exits as soon as it has reported. */
  const pid_t child = fork();
  if (child < 0) Fail(errno, "fork", NULL);
  if (child > 0) {
    Report(0, child);
    _exit(0);
  }
  close(CRIB_PAUSE_REPORT_FD);
  prctl(PR_SET_NAME, "crib-pause", 0, 0, 0);
  /* Waiting, the process runs nothing but the few pages a wake-up touches, which the kernel
   * maps back: an idle pod costs the pages this process wrote, not its binary's (most of a
   * static glibc), nor the stack the set-up used. */
  struct range clean[8];
  unsigned long stack_low = 0;
  const int count = CleanRanges(clean, 8, &stack_low);
  char here;
  const unsigned long below = ((unsigned long)&here - 4096) & ~4095UL;
  if (stack_low != 0 && below > stack_low) CRIB_MADVISE(stack_low, below - stack_low);
  for (int i = 0; i < count; ++i) CRIB_MADVISE(clean[i].start, clean[i].end - clean[i].start);
  for (;;) {
    CRIB_PAUSE();
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
  }
}
