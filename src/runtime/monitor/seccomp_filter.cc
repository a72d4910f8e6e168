#include "runtime/monitor/seccomp_filter.h"

#include <fcntl.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "runtime/monitor/error_text.h"

namespace crib::runtime {
namespace {

bool ParseAction(const std::string& name, std::optional<uint32_t> errno_ret, uint32_t* action) {
  if (name == "SCMP_ACT_ALLOW") {
    *action = SCMP_ACT_ALLOW;
  } else if (name == "SCMP_ACT_ERRNO") {
    *action = SCMP_ACT_ERRNO(errno_ret.value_or(EPERM));
  } else if (name == "SCMP_ACT_KILL" || name == "SCMP_ACT_KILL_THREAD") {
    *action = SCMP_ACT_KILL_THREAD;
  } else if (name == "SCMP_ACT_KILL_PROCESS") {
    *action = SCMP_ACT_KILL_PROCESS;
  } else if (name == "SCMP_ACT_TRAP") {
    *action = SCMP_ACT_TRAP;
  } else if (name == "SCMP_ACT_LOG") {
    *action = SCMP_ACT_LOG;
  } else if (name == "SCMP_ACT_TRACE") {
    *action = SCMP_ACT_TRACE(errno_ret.value_or(EPERM));
  } else {
    return false;
  }
  return true;
}

bool ParseOp(const std::string& name, scmp_compare* op) {
  static const struct {
    const char* name;
    scmp_compare op;
  } kOps[] = {{"SCMP_CMP_NE", SCMP_CMP_NE},
              {"SCMP_CMP_LT", SCMP_CMP_LT},
              {"SCMP_CMP_LE", SCMP_CMP_LE},
              {"SCMP_CMP_EQ", SCMP_CMP_EQ},
              {"SCMP_CMP_GE", SCMP_CMP_GE},
              {"SCMP_CMP_GT", SCMP_CMP_GT},
              {"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ}};
  for (const auto& o : kOps) {
    if (name == o.name) {
      *op = o.op;
      return true;
    }
  }
  return false;
}

uint32_t ParseArch(const std::string& name) {
  static const struct {
    const char* name;
    uint32_t arch;
  } kArches[] = {{"SCMP_ARCH_X86_64", SCMP_ARCH_X86_64},
                 {"SCMP_ARCH_X86", SCMP_ARCH_X86},
                 {"SCMP_ARCH_X32", SCMP_ARCH_X32},
                 {"SCMP_ARCH_AARCH64", SCMP_ARCH_AARCH64},
                 {"SCMP_ARCH_ARM", SCMP_ARCH_ARM}};
  for (const auto& a : kArches) {
    if (name == a.name) return a.arch;
  }
  return 0;
}

unsigned int FilterFlags(const Seccomp& s) {
  unsigned int flags = 0;
  for (const auto& flag : s.flags) {
    if (flag == "SECCOMP_FILTER_FLAG_TSYNC") {
      flags |= SECCOMP_FILTER_FLAG_TSYNC;
    } else if (flag == "SECCOMP_FILTER_FLAG_LOG") {
      flags |= SECCOMP_FILTER_FLAG_LOG;
    } else if (flag == "SECCOMP_FILTER_FLAG_SPEC_ALLOW") {
      flags |= SECCOMP_FILTER_FLAG_SPEC_ALLOW;
    }
  }
  return flags;
}

}  // namespace

bool ReadCompiledSeccomp(const std::string& path, const Seccomp& seccomp, SeccompProgram* program) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  off_t size = ::lseek(fd, 0, SEEK_END);
  if (size <= 0 || size % sizeof(sock_filter) != 0 || size > (1 << 20)) {
    ::close(fd);
    return false;
  }
  program->filter.resize(size / sizeof(sock_filter));
  ssize_t n = ::pread(fd, program->filter.data(), size, 0);
  ::close(fd);
  program->flags = FilterFlags(seccomp);
  return n == size;
}

bool CompileSeccomp(const Seccomp& s, SeccompProgram* program, std::string* error) {
  uint32_t default_action;
  if (!ParseAction(s.default_action, s.default_errno_ret, &default_action)) {
    *error = "seccomp: unknown default action \"" + s.default_action + "\"";
    return false;
  }
  scmp_filter_ctx ctx = seccomp_init(default_action);
  if (ctx == nullptr) {
    *error = "seccomp: seccomp_init failed";
    return false;
  }
  struct Release {
    scmp_filter_ctx ctx;
    ~Release() { seccomp_release(ctx); }
  } release{ctx};
  seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
  for (const auto& name : s.architectures) {
    uint32_t arch = ParseArch(name);
    if (arch == 0) continue;  // an architecture this build does not target
    int rc = seccomp_arch_add(ctx, arch);
    if (rc != 0 && rc != -EEXIST) {
      *error = "seccomp: add architecture " + name + ": " + ErrorText(-rc);
      return false;
    }
  }
  for (const auto& rule : s.syscalls) {
    uint32_t action;
    if (!ParseAction(rule.action, rule.errno_ret, &action)) {
      *error = "seccomp: unknown action \"" + rule.action + "\"";
      return false;
    }
    std::vector<scmp_arg_cmp> args;
    for (const auto& a : rule.args) {
      scmp_compare op;
      if (!ParseOp(a.op, &op)) {
        *error = "seccomp: unknown operator \"" + a.op + "\"";
        return false;
      }
      args.push_back(scmp_arg_cmp{a.index, op, a.value, a.value_two});
    }
    for (const auto& name : rule.names) {
      int nr = seccomp_syscall_resolve_name(name.c_str());
      if (nr == __NR_SCMP_ERROR) continue;  // unknown to this libseccomp: skipped, as runc does
      int rc = seccomp_rule_add_array(ctx, action, nr, args.size(), args.data());
      if (rc == -EACCES) continue;  // the rule's action is the default action
      if (rc != 0) {
        *error = "seccomp: add rule for " + name + ": " + ErrorText(-rc);
        return false;
      }
    }
  }
  program->flags = FilterFlags(s);
  int fd = memfd_create("crib-seccomp", MFD_CLOEXEC);
  if (fd < 0) {
    *error = std::string("seccomp: memfd_create: ") + ErrorText(errno);
    return false;
  }
  int rc = seccomp_export_bpf(ctx, fd);
  if (rc != 0) {
    ::close(fd);
    *error = std::string("seccomp: export bpf: ") + ErrorText(-rc);
    return false;
  }
  off_t size = ::lseek(fd, 0, SEEK_END);
  program->filter.resize(size / sizeof(sock_filter));
  ssize_t n = ::pread(fd, program->filter.data(), size, 0);
  ::close(fd);
  if (n != size) {
    *error = "seccomp: read back the bpf program";
    return false;
  }
  return true;
}

int LoadSeccomp(const SeccompProgram& program) {
  struct sock_fprog prog;
  prog.len = static_cast<unsigned short>(program.filter.size());
  prog.filter = const_cast<sock_filter*>(program.filter.data());
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, program.flags, &prog) != 0) return errno;
  return 0;
}

}  // namespace crib::runtime
