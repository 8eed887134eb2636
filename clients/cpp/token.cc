#include "token.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <string_view>

namespace micro_client {
namespace {

// Neither protobuf nor gRPC++ has a public base64url decoder, and abseil's is not among the
// libraries linked offline; RFC 4648 section 5 without padding takes a dozen lines.
std::optional<std::string> Base64UrlDecode(std::string_view text) {
  std::string out;
  unsigned bits = 0;
  int count = 0;
  for (char c : text) {
    int value;
    if (c >= 'A' && c <= 'Z') value = c - 'A';
    else if (c >= 'a' && c <= 'z') value = c - 'a' + 26;
    else if (c >= '0' && c <= '9') value = c - '0' + 52;
    else if (c == '-') value = 62;
    else if (c == '_') value = 63;
    else return std::nullopt;
    bits = (bits << 6) | static_cast<unsigned>(value);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out += static_cast<char>((bits >> count) & 0xff);
    }
  }
  return out;
}

}  // namespace

std::optional<std::string> Subject(const std::string& jwt) {
  std::string_view view = jwt;
  auto first = view.find('.');
  auto second = view.find('.', first + 1);
  if (first == std::string_view::npos || second == std::string_view::npos) return std::nullopt;
  auto payload = Base64UrlDecode(view.substr(first + 1, second - first - 1));
  if (!payload) return std::nullopt;
  google::protobuf::Struct claims;
  if (!google::protobuf::util::JsonStringToMessage(*payload, &claims).ok()) return std::nullopt;
  auto sub = claims.fields().find("sub");
  if (sub == claims.fields().end() || sub->second.string_value().empty()) return std::nullopt;
  return sub->second.string_value();
}

}  // namespace micro_client
