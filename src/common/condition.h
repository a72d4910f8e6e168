// A readiness verdict with its why, as the CRI Status RPC reports conditions.
#pragma once

#include <string>

namespace crib {

struct Readiness {
  bool ready = false;
  std::string reason;   // CamelCase, machine-readable
  std::string message;  // one sentence for a person
};

}  // namespace crib
