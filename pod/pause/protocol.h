/* What crib-pause reports to cribd over the pipe on fd 3: one fixed-size message, either
 * ready (code 0, with the pid of the process that holds the pod's namespaces) or an error
 * (errno as code, and a message naming the failing step). Plain C: crib-pause links no C++. */
#ifndef CRIB_POD_PAUSE_PROTOCOL_H_
#define CRIB_POD_PAUSE_PROTOCOL_H_

#include <stdint.h>

#define CRIB_PAUSE_REPORT_FD 3

struct crib_pause_report {
  int32_t code;      /* 0: ready; else the errno of the failure (or -1) */
  int32_t pid;       /* ready: the pause process, as the caller's pid namespace sees it */
  char message[504]; /* error: "setns net /run/crib/netns/4f2a: invalid argument" */
};

#endif /* CRIB_POD_PAUSE_PROTOCOL_H_ */
