// protobuf's C++ generator as a protoc plugin: protobuf's own
// src/google/protobuf/compiler/cpp/main.cc, whose Bazel target is private to protobuf.
// Built from the protobuf that the generated code links (the BCR module online, Debian's
// libprotoc offline), so generated code and runtime are always the same release.
#include "google/protobuf/compiler/cpp/generator.h"
#include "google/protobuf/compiler/plugin.h"

int main(int argc, char* argv[]) {
  google::protobuf::compiler::cpp::CppGenerator generator;
  return google::protobuf::compiler::PluginMain(argc, argv, &generator);
}
