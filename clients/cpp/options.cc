#include "options.h"

#include <map>

#include "flags.h"

namespace micro_client {

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
  bool help = false;
  auto values = SplitFlags(argc, argv, help, error);
  if (help) {
    Options options;
    options.help = true;
    return options;
  }
  if (!values) {
    error += Usage();
    return std::nullopt;
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
  for (const auto& [name, value] : *values) {
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
    if (values->count(required) == 0) {
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
