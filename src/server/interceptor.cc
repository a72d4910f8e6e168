#include "server/interceptor.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include <chrono>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/heap.h"
#include "common/logging.h"
#include "common/metrics.h"

namespace crib::server {
namespace {

using google::protobuf::FieldDescriptor;
using grpc::experimental::InterceptionHookPoints;

// "/runtime.v1.RuntimeService/Version" -> "Version".
absl::string_view RpcName(absl::string_view method) {
  const size_t slash = method.rfind('/');
  return slash == absl::string_view::npos ? method : method.substr(slash + 1);
}

// Adds the object ids of a request or response: top-level `*_id` and `image_ref` strings and
// the image of an ImageSpec. Only these named fields are read, so AuthConfig never is.
void CollectIds(const google::protobuf::Message& message, std::string& out) {
  const google::protobuf::Descriptor* descriptor = message.GetDescriptor();
  const google::protobuf::Reflection* reflection = message.GetReflection();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const FieldDescriptor* field = descriptor->field(i);
    if (field->is_repeated()) continue;
    if (field->type() == FieldDescriptor::TYPE_STRING &&
        (absl::EndsWith(field->name(), "_id") || field->name() == "image_ref")) {
      const std::string value = reflection->GetString(message, field);
      if (!value.empty()) absl::StrAppend(&out, " ", field->name(), "=", value);
    } else if (field->type() == FieldDescriptor::TYPE_MESSAGE &&
               field->message_type()->full_name() == "runtime.v1.ImageSpec" &&
               reflection->HasField(message, field)) {
      const auto& spec = reflection->GetMessage(message, field);
      const FieldDescriptor* image = spec.GetDescriptor()->FindFieldByName("image");
      const std::string value = spec.GetReflection()->GetString(spec, image);
      if (!value.empty()) absl::StrAppend(&out, " image=", value);
    }
  }
}

class RpcLogInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit RpcLogInterceptor(grpc::experimental::ServerRpcInfo* info)
      : rpc_(RpcName(info->method())),
        start_(std::chrono::steady_clock::now()),
        trace_ids_(spdlog::should_log(spdlog::level::debug)) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (trace_ids_ &&
        methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE)) {
      if (const void* message = methods->GetRecvMessage()) {
        CollectIds(*static_cast<const google::protobuf::Message*>(message), ids_);
      }
    }
    if (trace_ids_ &&
        methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_MESSAGE) &&
        !sent_message_) {
      sent_message_ = true;  // a stream's first message is enough
      if (const void* message = methods->GetSendMessage()) {
        CollectIds(*static_cast<const google::protobuf::Message*>(message), ids_);
      }
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      grpc::Status status = methods->GetSendStatus();
      if (status.error_code() == grpc::StatusCode::UNIMPLEMENTED &&
          status.error_message().empty()) {
        status = grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                              absl::StrCat(rpc_, " is not implemented by crib yet"));
        methods->ModifySendStatus(status);
      }
      Log(status);
      heap::NoteActivity();
    }
    methods->Proceed();
  }

 private:
  void Log(const grpc::Status& status) const {
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start_)
            .count();
    static metrics::HistogramFamily& latency = metrics::Registry::Global().Histogram(
        "cribd_grpc_request_duration_seconds",
        "Time from a CRI call's arrival to its status, by RPC (streams: the whole stream).",
        {"method"}, metrics::LatencyBuckets());
    static metrics::CounterFamily& errors = metrics::Registry::Global().Counter(
        "cribd_grpc_request_errors_total", "CRI calls that ended with an error, by RPC and code.",
        {"method", "code"});
    latency.Observe({rpc_}, ms / 1000);
    if (status.ok()) {
      spdlog::debug("rpc {} ok in {:.3f} ms{}", rpc_, ms, ids_);
    } else {
      // gRPC and absl share the canonical code numbering.
      errors.Add(
          {rpc_, absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code()))});
      spdlog::warn("rpc {} failed in {:.3f} ms{}: {}: {}", rpc_, ms, ids_,
                   absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code())),
                   status.error_message());
    }
  }

  std::string rpc_;
  std::chrono::steady_clock::time_point start_;
  bool trace_ids_;
  bool sent_message_ = false;
  std::string ids_;
};

class RpcLogInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new RpcLogInterceptor(info);
  }
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeRpcLogInterceptorFactory() {
  return std::make_unique<RpcLogInterceptorFactory>();
}

}  // namespace crib::server
