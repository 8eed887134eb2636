// The names of gRPC status codes.
#ifndef MICRO_CLIENTS_CPP_STATUS_NAMES_H_
#define MICRO_CLIENTS_CPP_STATUS_NAMES_H_

#include <grpcpp/support/status.h>

namespace micro_client {

// gRPC C++ has no public name for a status code; these are the names of the gRPC spec
// (and of every other language's API), which is what a reader searches for.
const char* CodeName(grpc::StatusCode code);

}  // namespace micro_client

#endif  // MICRO_CLIENTS_CPP_STATUS_NAMES_H_
