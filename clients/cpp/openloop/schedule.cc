#include "openloop/schedule.h"

#include <cmath>
#include <map>

#include "flags.h"

namespace micro_openloop {

using micro_client::ParseDouble;
using micro_client::ParseInt;

std::string Usage() {
  return "usage: micro_openloop --target=HOST:PORT --method=GetUser|CreatePayment --rate=CALLS_PER_S\n"
         "                      --user-id=ID [--token=JWT] [--key-prefix=TEXT]\n"
         "                      [--warmup-seconds=1] [--duration-seconds=5] [--start-at=EPOCH_S]\n"
         "                      [--deadline-ms=1000] [--channels=8] [--connect-timeout-seconds=10]\n"
         "                      [--out=FILE]\n"
         "\n"
         "Offers calls at a fixed rate whatever the answers and writes, as one JSON object,\n"
         "each measured call's time from its schedule by outcome (tools/bench/openloop.py).\n";
}

std::optional<Job> ParseJob(int argc, char** argv, std::string& error) {
  bool help = false;
  auto values = micro_client::SplitFlags(argc, argv, help, error);
  if (help) {
    Job job;
    job.help = true;
    return job;
  }
  if (!values) {
    error += Usage();
    return std::nullopt;
  }
  Job job;
  const std::map<std::string, std::string*> strings = {
      {"target", &job.target},   {"method", &job.method},         {"user-id", &job.user_id},
      {"token", &job.token},     {"key-prefix", &job.key_prefix}, {"out", &job.out},
  };
  const std::map<std::string, double*> numbers = {
      {"rate", &job.rate},
      {"warmup-seconds", &job.warmup_s},
      {"duration-seconds", &job.duration_s},
      {"start-at", &job.start_at},
  };
  for (const auto& [name, value] : *values) {
    if (auto s = strings.find(name); s != strings.end()) {
      *s->second = value;
    } else if (auto d = numbers.find(name); d != numbers.end()) {
      if (!ParseDouble(value, *d->second) || *d->second < 0) {
        error = "--" + name + " must be a number >= 0, got '" + value + "'\n";
        return std::nullopt;
      }
    } else if (name == "deadline-ms" || name == "channels" || name == "connect-timeout-seconds") {
      std::int64_t n = 0;
      if (!ParseInt(value, n) || n <= 0 || n > 3600000) {
        error = "--" + name + " must be a positive whole number, got '" + value + "'\n";
        return std::nullopt;
      }
      if (name == "channels") {
        job.channels = static_cast<int>(n);
      } else if (name == "connect-timeout-seconds") {
        job.connect_timeout = std::chrono::seconds(n);
      } else {
        job.deadline = std::chrono::milliseconds(n);
      }
    } else {
      error = "unknown flag --" + name + "\n" + Usage();
      return std::nullopt;
    }
  }
  if (job.target.empty() || job.user_id.empty()) {
    error = "--target and --user-id are required\n" + Usage();
    return std::nullopt;
  }
  if (job.method != "GetUser" && job.method != "CreatePayment") {
    error = "--method must be GetUser or CreatePayment, got '" + job.method + "'\n";
    return std::nullopt;
  }
  if (job.rate <= 0 || job.duration_s <= 0) {
    error = "--rate and --duration-seconds must be positive\n";
    return std::nullopt;
  }
  return job;
}

Schedule::Schedule(const Job& job)
    : steady_anchor_(Steady::now()),
      wall_anchor_(std::chrono::system_clock::now()),
      interval_s_(1.0 / job.rate) {
  using Seconds = std::chrono::duration<double>;
  const double now_s = Seconds(wall_anchor_.time_since_epoch()).count();
  const double start_at = job.start_at > 0 ? job.start_at : now_s + 1.0 + job.warmup_s;
  const auto window =
      steady_anchor_ + std::chrono::duration_cast<Steady::duration>(Seconds(start_at - now_s));
  first_ = window - std::chrono::duration_cast<Steady::duration>(Seconds(job.warmup_s));
  // Both rounded up: every call scheduled before the window's end, and the first call at or
  // after its start.
  calls_ = static_cast<std::int64_t>(std::ceil((job.warmup_s + job.duration_s) * job.rate - 1e-9));
  measured_from_ = static_cast<std::int64_t>(std::ceil(job.warmup_s * job.rate - 1e-9));
}

Schedule::Steady::time_point Schedule::At(std::int64_t n) const {
  return first_ + std::chrono::duration_cast<Steady::duration>(
                      std::chrono::duration<double>(static_cast<double>(n) * interval_s_));
}

std::chrono::system_clock::time_point Schedule::WallTime(Steady::time_point at) const {
  return wall_anchor_ +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(at - steady_anchor_);
}

}  // namespace micro_openloop
