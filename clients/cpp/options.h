// Command-line options of micro_client.
#ifndef MICRO_CLIENTS_CPP_OPTIONS_H_
#define MICRO_CLIENTS_CPP_OPTIONS_H_

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace micro_client {

struct Options {
  std::string usersvc;
  std::string authsvc;
  std::string paymentsvc;
  std::string email;
  std::string password;
  std::string display_name;
  std::int64_t amount = 0;
  std::string currency;  // empty: the server's default currency
  std::string description;
  std::string idempotency_key;  // empty: a random one is made
  std::chrono::milliseconds timeout{10000};
  bool help = false;  // --help: print the usage and do nothing else
};

// Parses argv (`--name=value` or `--name value`). On a mistake, writes what is wrong and
// the usage to `error` and returns nothing.
std::optional<Options> ParseOptions(int argc, char** argv, std::string& error);

std::string Usage();

}  // namespace micro_client

#endif  // MICRO_CLIENTS_CPP_OPTIONS_H_
