#include "flags.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <system_error>

namespace micro_client {

std::optional<std::map<std::string, std::string>> SplitFlags(int argc, char** argv, bool& help,
                                                             std::string& error) {
  std::map<std::string, std::string> values;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      help = true;
      return std::nullopt;
    }
    if (arg.substr(0, 2) != "--") {
      error = "unexpected argument '" + std::string(arg) + "'\n";
      return std::nullopt;
    }
    arg.remove_prefix(2);
    if (auto eq = arg.find('='); eq != std::string_view::npos) {
      values[std::string(arg.substr(0, eq))] = std::string(arg.substr(eq + 1));
    } else if (i + 1 < argc) {
      values[std::string(arg)] = argv[++i];
    } else {
      error = "--" + std::string(arg) + " needs a value\n";
      return std::nullopt;
    }
  }
  return values;
}

bool ParseInt(std::string_view text, std::int64_t& out) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, out);
  return ec == std::errc() && ptr == end && !text.empty();
}

// strtod, not from_chars: macOS's libc++ has the floating-point from_chars only lately.
bool ParseDouble(const std::string& text, double& out) {
  char* end = nullptr;
  out = std::strtod(text.c_str(), &end);
  return !text.empty() && end == text.c_str() + text.size() && std::isfinite(out);
}

}  // namespace micro_client
