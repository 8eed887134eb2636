// The open-loop job (its flags) and the schedule of its calls.
#ifndef MICRO_CLIENTS_CPP_OPENLOOP_SCHEDULE_H_
#define MICRO_CLIENTS_CPP_OPENLOOP_SCHEDULE_H_

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace micro_openloop {

struct Job {
  std::string target;
  std::string method;  // GetUser or CreatePayment
  double rate = 0;     // calls per second
  double warmup_s = 1;
  double duration_s = 5;
  // When the measured window opens, as seconds since the epoch (the bench starts several
  // drivers on one window); 0: a second and the warm-up from now.
  double start_at = 0;
  std::chrono::milliseconds deadline{1000};
  std::string user_id;
  std::string token;       // sent as `authorization: Bearer <token>` when set
  std::string key_prefix;  // CreatePayment's idempotency keys are key_prefix + call number
  int channels = 8;        // HTTP/2 connections; calls go round-robin over them
  std::chrono::seconds connect_timeout{10};
  std::string out;         // where the results go; stdout when empty
  bool help = false;       // --help: print the usage and do nothing else
};

std::optional<Job> ParseJob(int argc, char** argv, std::string& error);
std::string Usage();

// Call n is due at first + n / rate. The warm-up's calls run but are not measured; every
// call scheduled before the window closes is started.
class Schedule {
 public:
  using Steady = std::chrono::steady_clock;

  explicit Schedule(const Job& job);

  std::int64_t Calls() const { return calls_; }
  std::int64_t MeasuredCalls() const { return calls_ - measured_from_; }
  bool Measured(std::int64_t n) const { return n >= measured_from_; }
  Steady::time_point At(std::int64_t n) const;
  // The wall-clock time of a steady-clock instant (gRPC deadlines are wall-clock times).
  std::chrono::system_clock::time_point WallTime(Steady::time_point at) const;

 private:
  Steady::time_point steady_anchor_;
  std::chrono::system_clock::time_point wall_anchor_;
  Steady::time_point first_;
  double interval_s_;
  std::int64_t calls_;
  std::int64_t measured_from_;
};

}  // namespace micro_openloop

#endif  // MICRO_CLIENTS_CPP_OPENLOOP_SCHEDULE_H_
