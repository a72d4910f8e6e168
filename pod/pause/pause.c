/* crib-pause: the pod's infra process. cribd starts it once per pod; it joins the pinned
 * network namespace, makes the pod's ipc and uts (and, for a shared process namespace, pid)
 * namespaces, sets the hostname and the namespaced sysctls inside them, joins the pod's
 * cgroup, reports to cribd on fd 3 and then waits for SIGTERM, reaping zombies when it is
 * pid 1. It must stay tiny: no C++, no allocation beyond the stack, linked statically. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
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

/* key=value: /proc/sys/<key with dots as slashes> gets value. */
static void ApplySysctl(const char* assignment) {
  const char* eq = strchr(assignment, '=');
  if (eq == NULL || eq == assignment) Fail(EINVAL, "parse sysctl", assignment);
  char path[256];
  const size_t key_len = (size_t)(eq - assignment);
  if (key_len + sizeof("/proc/sys/") >= sizeof(path)) Fail(ENAMETOOLONG, "sysctl", assignment);
  memcpy(path, "/proc/sys/", 10);
  for (size_t i = 0; i < key_len; ++i) {
    path[10 + i] = assignment[i] == '.' ? '/' : assignment[i];
  }
  path[10 + key_len] = '\0';
  const int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) Fail(errno, "set sysctl: open", path);
  const char* value = eq + 1;
  if (write(fd, value, strlen(value)) < 0) Fail(errno, "set sysctl: write", assignment);
  close(fd);
}

int main(int argc, char** argv) {
  const char* netns = NULL;
  const char* hostname = NULL;
  int flags = 0;
  for (int i = 1; i < argc; ++i) {
    const char* arg = argv[i];
    if (strcmp(arg, "--netns") == 0 && i + 1 < argc) {
      netns = argv[++i];
    } else if (strcmp(arg, "--hostname") == 0 && i + 1 < argc) {
      hostname = argv[++i];
    } else if (strcmp(arg, "--ipc") == 0) {
      flags |= CLONE_NEWIPC;
    } else if (strcmp(arg, "--uts") == 0) {
      flags |= CLONE_NEWUTS;
    } else if (strcmp(arg, "--pid") == 0) {
      flags |= CLONE_NEWPID;
    } else if ((strcmp(arg, "--sysctl") == 0 || strcmp(arg, "--cgroup-procs") == 0) &&
               i + 1 < argc) {
      ++i; /* applied below, once inside the namespaces / once forked */
    } else if (strcmp(arg, "--pod") == 0 && i + 1 < argc) {
      ++i; /* the pod's directory: only for finding this process and its cribd again */
    } else {
      Fail(EINVAL, "unknown argument", arg);
    }
  }

  if (netns != NULL) {
    const int fd = open(netns, O_RDONLY | O_CLOEXEC);
    if (fd < 0) Fail(errno, "open network namespace", netns);
    if (setns(fd, CLONE_NEWNET) != 0) Fail(errno, "setns net", netns);
    close(fd);
  }
  if (flags != 0 && unshare(flags) != 0) Fail(errno, "unshare ipc/uts/pid namespaces", NULL);
  if (hostname != NULL && sethostname(hostname, strlen(hostname)) != 0) {
    Fail(errno, "sethostname", hostname);
  }
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--sysctl") == 0)
      ApplySysctl(argv[++i]);
    else if (strcmp(argv[i], "--netns") == 0 || strcmp(argv[i], "--hostname") == 0)
      ++i;
  }

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
    /* Into the pod's cgroup before cribd hears of it: a cribd killed at any moment leaves no
     * pause process that its cgroup does not hold. */
    char pid_text[16];
    snprintf(pid_text, sizeof(pid_text), "%d", (int)child);
    for (int i = 1; i < argc; ++i) {
      if (strcmp(argv[i], "--cgroup-procs") != 0) continue;
      const char* procs = argv[++i];
      const int fd = open(procs, O_WRONLY | O_CLOEXEC);
      if (fd < 0 || write(fd, pid_text, strlen(pid_text)) < 0) {
        const int err = errno;
        kill(child, SIGKILL);
        Fail(err, "join cgroup", procs);
      }
      close(fd);
    }
    Report(0, child);
    _exit(0);
  }
  close(CRIB_PAUSE_REPORT_FD);
  prctl(PR_SET_NAME, "crib-pause", 0, 0, 0);
  for (;;) {
    pause();
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
  }
}
