// The registry's HTTP exchanges over libcurl. Only crib-fetch (fetch_main.cc) runs them: cribd
// hands every exchange to a crib-fetch process (transport.h), so neither libcurl nor the TLS
// stacks and protocol libraries it loads are ever part of cribd.
#pragma once

#include "absl/status/statusor.h"
#include "image/registry/transport.h"

namespace crib::image::registry {

// Performs `exchange` in this process, as Perform (transport.h) describes.
absl::StatusOr<HttpResponse> CurlPerform(const HttpExchange& exchange, const TlsOptions& tls,
                                         const TransferLimits& limits);

}  // namespace crib::image::registry
