#include "options.h"

#include <charconv>
#include <map>
#include <string_view>
#include <system_error>

namespace micro_client {
namespace {

// A hand-written parser: the flags library that would do this (absl's) is a Bazel module
// online but only a set of system libraries offline, and a dozen `--name=value` flags do
// not justify bridging the two.
bool ParseInt(std::string_view text, std::int64_t& out) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, out);
  return ec == std::errc() && ptr == end && !text.empty();
}

}  // namespace

std::string Usage() {
  return "usage: micro_client --usersvc=HOST:PORT --authsvc=HOST:PORT --paymentsvc=HOST:PORT\n"
         "                    --email=EMAIL --password=PASSWORD --amount=MINOR_UNITS\n"
         "                    [--currency=ISO4217] [--description=TEXT] [--display-name=NAME]\n"
         "                    [--idempotency-key=KEY] [--timeout-seconds=10]\n"
         "\n"
         "Signs up (or finds the account already there), logs in, creates a payment with the\n"
         "access token and an idempotency key, and lists the user's payments. Run it again\n"
         "with the same --idempotency-key and the payment is not made twice.\n";
}

std::optional<Options> ParseOptions(int argc, char** argv, std::string& error) {
  std::map<std::string, std::string> values;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      Options help;
      help.help = true;
      return help;
    }
    if (arg.substr(0, 2) != "--") {
      error = "unexpected argument '" + std::string(arg) + "'\n" + Usage();
      return std::nullopt;
    }
    arg.remove_prefix(2);
    std::string name, value;
    if (auto eq = arg.find('='); eq != std::string_view::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    } else if (i + 1 < argc) {
      name = arg;
      value = argv[++i];
    } else {
      error = "--" + std::string(arg) + " needs a value\n" + Usage();
      return std::nullopt;
    }
    values[name] = value;
  }

  Options options;
  const std::map<std::string, std::string*> strings = {
      {"usersvc", &options.usersvc},
      {"authsvc", &options.authsvc},
      {"paymentsvc", &options.paymentsvc},
      {"email", &options.email},
      {"password", &options.password},
      {"display-name", &options.display_name},
      {"currency", &options.currency},
      {"description", &options.description},
      {"idempotency-key", &options.idempotency_key},
  };
  std::string missing;
  for (const auto& [name, value] : values) {
    if (auto it = strings.find(name); it != strings.end()) {
      *it->second = value;
    } else if (name == "amount") {
      if (!ParseInt(value, options.amount)) {
        error = "--amount must be a whole number of minor units (cents), got '" + value + "'\n";
        return std::nullopt;
      }
    } else if (name == "timeout-seconds") {
      std::int64_t seconds = 0;
      if (!ParseInt(value, seconds) || seconds <= 0) {
        error = "--timeout-seconds must be a positive whole number, got '" + value + "'\n";
        return std::nullopt;
      }
      options.timeout = std::chrono::seconds(seconds);
    } else {
      error = "unknown flag --" + name + "\n" + Usage();
      return std::nullopt;
    }
  }
  for (const char* required :
       {"usersvc", "authsvc", "paymentsvc", "email", "password", "amount"}) {
    if (values.count(required) == 0) {
      missing += std::string(missing.empty() ? "" : ", ") + "--" + required;
    }
  }
  if (!missing.empty()) {
    error = "missing " + missing + "\n" + Usage();
    return std::nullopt;
  }
  return options;
}

}  // namespace micro_client
