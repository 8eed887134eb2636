// `--name=value` flags for the module's programs.
#ifndef MICRO_CLIENTS_CPP_FLAGS_H_
#define MICRO_CLIENTS_CPP_FLAGS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace micro_client {

// Splits argv into name -> value (`--name=value` or `--name value`; the last one wins).
// `--help` or `-h` sets `help` and returns nothing. On a mistake, writes it to `error` and
// returns nothing.
//
// Hand-written: the one flags library, abseil's, is a Bazel module online but only a set of
// system libraries offline, and a dozen flags do not justify bridging the two.
std::optional<std::map<std::string, std::string>> SplitFlags(int argc, char** argv, bool& help,
                                                             std::string& error);

bool ParseInt(std::string_view text, std::int64_t& out);
bool ParseDouble(const std::string& text, double& out);

}  // namespace micro_client

#endif  // MICRO_CLIENTS_CPP_FLAGS_H_
