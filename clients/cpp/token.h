// What the client reads from an access token.
#ifndef MICRO_CLIENTS_CPP_TOKEN_H_
#define MICRO_CLIENTS_CPP_TOKEN_H_

#include <optional>
#include <string>

namespace micro_client {

// The `sub` claim of a JWT: the user the services act for. Reads the payload only; the
// signature is the services' business (they verify every token they receive).
std::optional<std::string> Subject(const std::string& jwt);

}  // namespace micro_client

#endif  // MICRO_CLIENTS_CPP_TOKEN_H_
