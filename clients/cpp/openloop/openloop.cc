// micro_openloop: the bench's open-loop driver (tools/bench/openloop.py runs it).
//
// Starts calls on a fixed schedule whatever the answers, each with a deadline counted from
// its scheduled time, and records every call's status and time from that schedule. It is
// C++ because the load must cost the machine little: on the bench's two cores a Python
// client spends about as much CPU per call as the Python server it measures, so it could
// not offer twice the server's capacity without taking the CPU the server needs.
//
// gRPC's client queues calls beyond a connection's stream limit and fails them at their
// deadline, as a user's client would; this program adds nothing to that.
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <fstream>
#include <functional>
#include <grpcpp/grpcpp.h>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "openloop/schedule.h"
#include "payment/v1/payment.grpc.pb.h"
#include "status_names.h"
#include "user/v1/user.grpc.pb.h"

namespace micro_openloop {
namespace {

using micro_client::CodeName;
using Steady = std::chrono::steady_clock;

double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// A JSON string: the messages come from servers, so anything may be in them.
void Quote(std::ostream& out, const std::string& text) {
  out << '"';
  for (unsigned char c : text) {
    if (c == '"' || c == '\\') {
      out << '\\' << c;
    } else if (c < 0x20) {
      const char* hex = "0123456789abcdef";
      out << "\\u00" << hex[c >> 4] << hex[c & 15];
    } else {
      out << c;
    }
  }
  out << '"';
}

// What the calls came to; filled from gRPC's callback threads.
class Results {
 public:
  explicit Results(const Schedule& schedule) : schedule_(schedule) {}

  void Lag(std::int64_t n, double ms) {
    if (!schedule_.Measured(n)) return;
    std::lock_guard lock(mu_);
    lag_ms_.push_back(ms);
  }

  void Done(std::int64_t n, const std::string& key, const grpc::Status& status, double ms) {
    const grpc::StatusCode code = status.error_code();
    std::lock_guard lock(mu_);
    // Every call's key, warm-up included: the bench checks them all against the database.
    if (!key.empty()) {
      (code == grpc::StatusCode::OK                    ? acked_
       : code == grpc::StatusCode::RESOURCE_EXHAUSTED ? shed_keys_
                                                       : unknown_keys_)
          .push_back(key);
    }
    if (schedule_.Measured(n)) {
      if (code == grpc::StatusCode::OK) {
        ok_ms_.push_back(ms);
      } else if (code == grpc::StatusCode::RESOURCE_EXHAUSTED) {
        shed_ms_.push_back(ms);
      } else {
        if (++errors_[CodeName(code)] == 1) messages_[CodeName(code)] = status.error_message();
      }
    }
    if (--outstanding_ == 0) idle_.notify_all();
  }

  void Started() {
    std::lock_guard lock(mu_);
    ++outstanding_;
  }

  void WaitIdle() {
    std::unique_lock lock(mu_);
    idle_.wait(lock, [this] { return outstanding_ == 0; });
  }

  // The bench reads this (openloop.py, OpenWorkerResult): one JSON object.
  void Write(std::ostream& out, double cpu_s, double wall_s) {
    std::lock_guard lock(mu_);
    out << "{\"sent\":" << schedule_.MeasuredCalls() << ",\"cpu_s\":" << cpu_s
        << ",\"wall_s\":" << wall_s;
    auto numbers = [&out](const char* name, const std::vector<double>& values) {
      out << ",\"" << name << "\":[";
      for (std::size_t i = 0; i < values.size(); ++i) out << (i ? "," : "") << values[i];
      out << "]";
    };
    // Keys are the bench's own prefix and a number: nothing to escape.
    auto strings = [&out](const char* name, const std::vector<std::string>& values) {
      out << ",\"" << name << "\":[";
      for (std::size_t i = 0; i < values.size(); ++i) {
        out << (i ? "," : "") << '"' << values[i] << '"';
      }
      out << "]";
    };
    numbers("ok_ms", ok_ms_);
    numbers("shed_ms", shed_ms_);
    numbers("lag_ms", lag_ms_);
    strings("acked", acked_);
    strings("shed_keys", shed_keys_);
    strings("unknown_keys", unknown_keys_);
    out << ",\"errors\":{";
    bool first = true;
    for (const auto& [code, count] : errors_) {
      out << (first ? "" : ",") << '"' << code << "\":" << count;
      first = false;
    }
    out << "},\"error_messages\":{";
    first = true;
    for (const auto& [code, message] : messages_) {
      out << (first ? "" : ",") << '"' << code << "\":";
      Quote(out, message);
      first = false;
    }
    out << "}}\n";
  }

 private:
  const Schedule& schedule_;
  std::mutex mu_;
  std::condition_variable idle_;
  std::int64_t outstanding_ = 0;
  std::vector<double> ok_ms_, shed_ms_, lag_ms_;
  std::vector<std::string> acked_, shed_keys_, unknown_keys_;
  std::map<std::string, std::int64_t> errors_;
  std::map<std::string, std::string> messages_;  // each error code's first message
};

// One call in flight: its context, messages and place in the schedule, freed when it ends.
template <typename Request, typename Response>
struct Call {
  grpc::ClientContext context;
  Request request;
  Response response;
  std::int64_t n = 0;
  Steady::time_point scheduled;
  std::string key;
};

class Driver {
 public:
  Driver(const Job& job, const Schedule& schedule, Results& results)
      : job_(job), schedule_(schedule), results_(results) {
    grpc::ChannelArguments args;
    // One connection per channel: the load spreads over the server's workers as it would
    // from that many clients.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    for (int i = 0; i < job.channels; ++i) {
      channels_.push_back(
          grpc::CreateCustomChannel(job.target, grpc::InsecureChannelCredentials(), args));
      users_.push_back(user::v1::UserService::NewStub(channels_.back()));
      payments_.push_back(payment::v1::PaymentService::NewStub(channels_.back()));
    }
  }

  // Every channel connected within `timeout` of now (one deadline for all of them).
  bool Connect(std::chrono::seconds timeout) {
    const auto deadline = std::chrono::system_clock::now() + timeout;
    for (auto& channel : channels_) {
      if (!channel->WaitForConnected(deadline)) return false;
    }
    return true;
  }

  void Start(std::int64_t n, Steady::time_point scheduled) {
    results_.Started();
    results_.Lag(n, Millis(Steady::now() - scheduled));
    std::size_t channel = static_cast<std::size_t>(n) % channels_.size();
    if (job_.method == "GetUser") {
      auto* call = Prepare<user::v1::GetUserRequest, user::v1::GetUserResponse>(n, scheduled);
      call->request.set_user_id(job_.user_id);
      users_[channel]->async()->GetUser(&call->context, &call->request, &call->response,
                                        Finish(call));
    } else {
      auto* call = Prepare<payment::v1::CreatePaymentRequest, payment::v1::CreatePaymentResponse>(
          n, scheduled);
      call->key = job_.key_prefix + std::to_string(n);
      call->request.set_user_id(job_.user_id);
      call->request.set_amount(1250);
      call->request.set_currency("USD");
      call->request.set_idempotency_key(call->key);
      call->request.set_description("bench");
      payments_[channel]->async()->CreatePayment(&call->context, &call->request,
                                                 &call->response, Finish(call));
    }
  }

 private:
  static double Millis(Steady::duration d) {
    return std::chrono::duration<double, std::milli>(d).count();
  }

  template <typename Request, typename Response>
  Call<Request, Response>* Prepare(std::int64_t n, Steady::time_point scheduled) {
    auto* call = new Call<Request, Response>();
    call->n = n;
    call->scheduled = scheduled;
    // The deadline runs from the schedule, so a call that waits in this client (behind a
    // stream limit, or behind a late start) spends its own time, as a user's would.
    call->context.set_deadline(schedule_.WallTime(scheduled) + job_.deadline);
    if (!job_.token.empty()) call->context.AddMetadata("authorization", "Bearer " + job_.token);
    return call;
  }

  template <typename C>
  std::function<void(grpc::Status)> Finish(C* call) {
    return [this, call](grpc::Status status) {
      results_.Done(call->n, call->key, status,
                    Millis(Steady::now() - call->scheduled));
      delete call;
    };
  }

  const Job& job_;
  const Schedule& schedule_;
  Results& results_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<user::v1::UserService::Stub>> users_;
  std::vector<std::unique_ptr<payment::v1::PaymentService::Stub>> payments_;
};

int Run(const Job& job) {
  Schedule schedule(job);
  Results results(schedule);
  Driver driver(job, schedule, results);
  if (!driver.Connect(job.connect_timeout)) {
    std::cerr << "micro_openloop: could not connect to " << job.target << " within "
              << job.connect_timeout.count() << " s\n";
    return 1;
  }
  std::this_thread::sleep_until(schedule.At(0));
  const double cpu0 = CpuSeconds();
  const auto wall0 = Steady::now();
  for (std::int64_t n = 0; n < schedule.Calls(); ++n) {
    const auto at = schedule.At(n);
    if (Steady::now() < at) std::this_thread::sleep_until(at);
    driver.Start(n, at);
  }
  results.WaitIdle();
  const double wall_s = std::chrono::duration<double>(Steady::now() - wall0).count();
  const double cpu_s = CpuSeconds() - cpu0;
  if (job.out.empty()) {
    results.Write(std::cout, cpu_s, wall_s);
  } else {
    std::ofstream out(job.out);
    results.Write(out, cpu_s, wall_s);
    if (!out) {
      std::cerr << "micro_openloop: could not write " << job.out << "\n";
      return 1;
    }
  }
  return 0;
}

}  // namespace
}  // namespace micro_openloop

int main(int argc, char** argv) {
  std::string error;
  auto job = micro_openloop::ParseJob(argc, argv, error);
  if (!job) {
    std::cerr << "micro_openloop: " << error;
    return 2;
  }
  if (job->help) {
    std::cout << micro_openloop::Usage();
    return 0;
  }
  return micro_openloop::Run(*job);
}
