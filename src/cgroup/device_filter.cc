#include "cgroup/device_filter.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "runtime/monitor/error_text.h"

namespace crib::cgroup {
namespace {

// Registers: r1 holds the context (struct bpf_cgroup_dev_ctx: access_type, major, minor) until
// the prologue has read it, then serves as scratch; r2 the device type, r3 the access bits,
// r4 the major, r5 the minor. r0 is the verdict: 1 allows, 0 denies.
constexpr uint8_t kCtx = 1, kScratch = 1, kType = 2, kAccess = 3, kMajor = 4, kMinor = 5;
constexpr int32_t kAllAccess = BPF_DEVCG_ACC_MKNOD | BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE;

bpf_insn Insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
  bpf_insn i;
  std::memset(&i, 0, sizeof(i));
  i.code = code;
  i.dst_reg = dst & 0xf;
  i.src_reg = src & 0xf;
  i.off = off;
  i.imm = imm;
  return i;
}

bpf_insn LoadWord(uint8_t dst, int16_t offset) {
  return Insn(BPF_LDX | BPF_MEM | BPF_W, dst, kCtx, offset, 0);
}
bpf_insn AluImm(uint8_t op, uint8_t dst, int32_t imm) {
  return Insn(BPF_ALU64 | op | BPF_K, dst, 0, 0, imm);
}
bpf_insn MovReg(uint8_t dst, uint8_t src) {
  return Insn(BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0);
}
bpf_insn JumpImm(uint8_t op, uint8_t dst, int32_t imm) {
  return Insn(BPF_JMP | op | BPF_K, dst, 0, 0, imm);  // the offset is filled in later
}
bpf_insn Exit() { return Insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0); }

// The access bits of "rwm" (empty is all of them).
int32_t AccessBits(const std::string& access) {
  if (access.empty()) return kAllAccess;
  int32_t bits = 0;
  for (char c : access) {
    if (c == 'r') bits |= BPF_DEVCG_ACC_READ;
    if (c == 'w') bits |= BPF_DEVCG_ACC_WRITE;
    if (c == 'm') bits |= BPF_DEVCG_ACC_MKNOD;
  }
  return bits;
}

// The BPF device type of a rule's type, 0 for "a" (every type), -1 for a type no device
// request has (the rule never matches).
int TypeOf(const std::string& type) {
  if (type == "a") return 0;
  if (type == "c" || type == "u") return BPF_DEVCG_DEV_CHAR;
  if (type == "b") return BPF_DEVCG_DEV_BLOCK;
  return -1;
}

// A rule that matches every request.
bool Unconditional(const DeviceRule& r) {
  return TypeOf(r.type) == 0 && r.major < 0 && r.minor < 0 && AccessBits(r.access) == kAllAccess;
}

long Bpf(int cmd, union bpf_attr* attr) { return ::syscall(SYS_bpf, cmd, attr, sizeof(*attr)); }

uint64_t Ptr(const void* p) { return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(p)); }

// The ids of the device programs on the cgroup open at `fd`, and how they were attached.
bool Query(int fd, std::vector<uint32_t>* ids, uint32_t* flags, std::string* error) {
  uint32_t buf[64];
  union bpf_attr attr;
  std::memset(&attr, 0, sizeof(attr));
  attr.query.target_fd = fd;
  attr.query.attach_type = BPF_CGROUP_DEVICE;
  attr.query.prog_ids = Ptr(buf);
  attr.query.prog_cnt = 64;
  if (Bpf(BPF_PROG_QUERY, &attr) != 0) {
    *error = std::string("query the cgroup's device programs: ") + runtime::ErrorText(errno);
    return false;
  }
  ids->assign(buf, buf + (attr.query.prog_cnt < 64 ? attr.query.prog_cnt : 64));
  *flags = attr.query.attach_flags;
  return true;
}

bool Detach(int cgroup_fd, uint32_t id, std::string* error) {
  union bpf_attr attr;
  std::memset(&attr, 0, sizeof(attr));
  attr.prog_id = id;
  int prog = static_cast<int>(Bpf(BPF_PROG_GET_FD_BY_ID, &attr));
  if (prog < 0) {
    if (errno == ENOENT) return true;  // gone meanwhile
    *error = "open device program " + std::to_string(id) + ": " + runtime::ErrorText(errno);
    return false;
  }
  std::memset(&attr, 0, sizeof(attr));
  attr.target_fd = cgroup_fd;
  attr.attach_bpf_fd = prog;
  attr.attach_type = BPF_CGROUP_DEVICE;
  long rc = Bpf(BPF_PROG_DETACH, &attr);
  int err = errno;
  ::close(prog);
  if (rc != 0 && err != ENOENT) {
    *error = "detach device program " + std::to_string(id) + ": " + runtime::ErrorText(err);
    return false;
  }
  return true;
}

int Load(const std::vector<bpf_insn>& insns, std::string* error) {
  static const char kLicense[] = "Apache-2.0";
  union bpf_attr attr;
  std::memset(&attr, 0, sizeof(attr));
  attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
  attr.insns = Ptr(insns.data());
  attr.insn_cnt = static_cast<uint32_t>(insns.size());
  attr.license = Ptr(kLicense);
  int fd = static_cast<int>(Bpf(BPF_PROG_LOAD, &attr));
  if (fd >= 0) return fd;
  int err = errno;
  // Again with the verifier's log, for the error message.
  std::string log(4096, '\0');
  attr.log_level = 1;
  attr.log_buf = Ptr(log.data());
  attr.log_size = static_cast<uint32_t>(log.size());
  fd = static_cast<int>(Bpf(BPF_PROG_LOAD, &attr));
  if (fd >= 0) return fd;
  log.resize(std::strlen(log.c_str()));
  while (!log.empty() && log.back() == '\n') log.pop_back();
  size_t last = log.rfind('\n');
  *error = std::string("load the device filter: ") + runtime::ErrorText(err) +
           (log.empty() ? "" : " (" + log.substr(last == std::string::npos ? 0 : last + 1) + ")");
  return -1;
}

}  // namespace

std::vector<bpf_insn> DeviceFilterProgram(const std::vector<DeviceRule>& rules) {
  std::vector<bpf_insn> p = {
      LoadWord(kType, offsetof(bpf_cgroup_dev_ctx, access_type)),
      AluImm(BPF_AND, kType, 0xffff),
      LoadWord(kAccess, offsetof(bpf_cgroup_dev_ctx, access_type)),
      AluImm(BPF_RSH, kAccess, 16),
      LoadWord(kMajor, offsetof(bpf_cgroup_dev_ctx, major)),
      LoadWord(kMinor, offsetof(bpf_cgroup_dev_ctx, minor)),
  };
  // Last rule first: the first block that matches returns its verdict; a condition that fails
  // jumps over the rest of its block to the next one.
  for (auto it = rules.rbegin(); it != rules.rend(); ++it) {
    const DeviceRule& r = *it;
    const int type = TypeOf(r.type);
    const int32_t access = AccessBits(r.access);
    if (type < 0 || r.major > INT32_MAX || r.minor > INT32_MAX) continue;  // matches nothing
    std::vector<bpf_insn> block;
    block.reserve(9);           // the longest block
    std::vector<size_t> exits;  // the jumps to the next block
    if (type > 0) {
      exits.push_back(block.size());
      block.push_back(JumpImm(BPF_JNE, kType, type));
    }
    if (access != kAllAccess) {
      block.push_back(MovReg(kScratch, kAccess));
      if (r.allow) {
        // Allows only if the request asks for nothing beyond the rule's access.
        block.push_back(AluImm(BPF_AND, kScratch, kAllAccess & ~access));
        exits.push_back(block.size());
        block.push_back(JumpImm(BPF_JNE, kScratch, 0));
      } else {
        // Denies if the request asks for any of the rule's access.
        block.push_back(AluImm(BPF_AND, kScratch, access));
        exits.push_back(block.size());
        block.push_back(JumpImm(BPF_JEQ, kScratch, 0));
      }
    }
    if (r.major >= 0) {
      exits.push_back(block.size());
      block.push_back(JumpImm(BPF_JNE, kMajor, static_cast<int32_t>(r.major)));
    }
    if (r.minor >= 0) {
      exits.push_back(block.size());
      block.push_back(JumpImm(BPF_JNE, kMinor, static_cast<int32_t>(r.minor)));
    }
    block.push_back(AluImm(BPF_MOV, 0, r.allow ? 1 : 0));
    block.push_back(Exit());
    for (size_t j : exits) block[j].off = static_cast<int16_t>(block.size() - (j + 1));
    p.insert(p.end(), block.begin(), block.end());
    if (Unconditional(r)) return p;  // the earlier rules can never be reached
  }
  p.push_back(AluImm(BPF_MOV, 0, 0));
  p.push_back(Exit());
  return p;
}

bool AllowsEveryDevice(const std::vector<DeviceRule>& rules) {
  for (auto it = rules.rbegin(); it != rules.rend(); ++it) {
    if (!it->allow) return false;
    if (Unconditional(*it)) return true;
  }
  return false;
}

std::vector<uint32_t> AttachedDeviceFilters(const std::string& cgroup_dir) {
  std::vector<uint32_t> ids;
  int fd = ::open(cgroup_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ids;
  uint32_t flags = 0;
  std::string ignored;
  if (!Query(fd, &ids, &flags, &ignored)) ids.clear();
  ::close(fd);
  return ids;
}

bool AttachDeviceFilter(const std::string& cgroup_dir, const std::vector<DeviceRule>& rules,
                        std::string* error) {
  int cgroup = ::open(cgroup_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cgroup < 0) {
    *error = "open cgroup " + cgroup_dir + ": " + runtime::ErrorText(errno);
    return false;
  }
  bool ok = false;
  std::vector<uint32_t> old;
  uint32_t flags = 0;
  int prog = -1;
  do {
    if (!Query(cgroup, &old, &flags, error)) break;
    prog = Load(DeviceFilterProgram(rules), error);
    if (prog < 0) break;
    // A program attached without BPF_F_ALLOW_MULTI refuses company: it goes first.
    bool multi = (flags & BPF_F_ALLOW_MULTI) != 0;
    if (!old.empty() && !multi) {
      bool detached = true;
      for (uint32_t id : old) detached = detached && Detach(cgroup, id, error);
      if (!detached) break;
      old.clear();
    }
    union bpf_attr attr;
    std::memset(&attr, 0, sizeof(attr));
    attr.target_fd = cgroup;
    attr.attach_bpf_fd = prog;
    attr.attach_type = BPF_CGROUP_DEVICE;
    attr.attach_flags = BPF_F_ALLOW_MULTI;
    if (Bpf(BPF_PROG_ATTACH, &attr) != 0) {
      *error = "attach the device filter to " + cgroup_dir + ": " + runtime::ErrorText(errno);
      break;
    }
    ok = true;
    for (uint32_t id : old) ok = ok && Detach(cgroup, id, error);
  } while (false);
  if (prog >= 0) ::close(prog);  // the attachment holds the program
  ::close(cgroup);
  if (ok) error->clear();
  return ok;
}

}  // namespace crib::cgroup
