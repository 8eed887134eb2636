// micro_client: signs up, logs in, pays and lists payments against the three services, as
// a C++ program built from the same proto_library targets as the Python services.
#include <google/protobuf/util/time_util.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "auth/v1/auth.grpc.pb.h"
#include "options.h"
#include "payment/v1/payment.grpc.pb.h"
#include "status_names.h"
#include "token.h"
#include "user/v1/user.grpc.pb.h"

namespace micro_client {
namespace {

using google::protobuf::util::TimeUtil;

constexpr int kExitRpcFailed = 1;
constexpr int kExitUsage = 2;

// One line on stderr naming the step, the service's address and the status, e.g.
// `micro_client: log in (authsvc at 127.0.0.1:50053) failed: UNAUTHENTICATED: ...`.
int Fail(const std::string& step, const std::string& service, const std::string& address,
         const grpc::Status& status) {
  std::cerr << "micro_client: " << step << " (" << service << " at " << address
            << ") failed: " << CodeName(status.error_code()) << ": "
            << status.error_message() << "\n";
  return kExitRpcFailed;
}

std::string RandomKey() {
  std::random_device random;
  std::uniform_int_distribution<unsigned> nibble(0, 15);
  std::string key = "cpp-";
  for (int i = 0; i < 32; ++i) key += "0123456789abcdef"[nibble(random)];
  return key;
}

// A fresh context per call (a ClientContext serves one call), with the deadline and, once
// logged in, the access token.
std::unique_ptr<grpc::ClientContext> Context(const Options& options,
                                             const std::string& token = "") {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + options.timeout);
  if (!token.empty()) context->AddMetadata("authorization", "Bearer " + token);
  return context;
}

std::string Describe(const payment::v1::Payment& p) {
  return p.payment_id() + "  " + std::to_string(p.amount()) + " " + p.currency() + "  " +
         payment::v1::PaymentStatus_Name(p.status()) + "  " +
         TimeUtil::ToString(p.created_at()) + "  key=" + p.idempotency_key() +
         (p.description().empty() ? "" : "  " + p.description());
}

int Run(const Options& options) {
  auto users = user::v1::UserService::NewStub(
      grpc::CreateChannel(options.usersvc, grpc::InsecureChannelCredentials()));
  auto auth = auth::v1::AuthService::NewStub(
      grpc::CreateChannel(options.authsvc, grpc::InsecureChannelCredentials()));
  auto payments = payment::v1::PaymentService::NewStub(
      grpc::CreateChannel(options.paymentsvc, grpc::InsecureChannelCredentials()));

  // 1. Sign up. An account that exists already is fine: login checks the password, and a
  // rerun with the same idempotency key then shows the payment is not made twice.
  user::v1::CreateUserRequest signup;
  signup.set_email(options.email);
  signup.set_password(options.password);
  signup.set_display_name(options.display_name);
  user::v1::CreateUserResponse user;
  grpc::Status status = users->CreateUser(Context(options).get(), signup, &user);
  if (status.ok()) {
    std::cout << "signed up " << user.email() << " as user " << user.user_id() << "\n";
  } else if (status.error_code() == grpc::StatusCode::ALREADY_EXISTS) {
    std::cout << "account " << options.email << " exists already\n";
  } else {
    return Fail("sign up", "usersvc", options.usersvc, status);
  }

  // 2. Log in. The access token goes with every call below; its subject is the user id,
  // known this way also when the account existed before.
  auth::v1::LoginRequest login_request;
  login_request.set_email(options.email);
  login_request.set_password(options.password);
  auth::v1::LoginResponse login;
  status = auth->Login(Context(options).get(), login_request, &login);
  if (!status.ok()) return Fail("log in", "authsvc", options.authsvc, status);
  std::optional<std::string> user_id = Subject(login.token());
  if (!user_id) {
    std::cerr << "micro_client: log in (authsvc at " << options.authsvc
              << ") returned a token without a user id (`sub` claim)\n";
    return kExitRpcFailed;
  }
  std::cout << "logged in as user " << *user_id << "; token valid until "
            << TimeUtil::ToString(login.expires_at()) << "\n";

  // 3. Pay. The idempotency key makes a retry (or a rerun) return the first payment.
  std::string key = options.idempotency_key.empty() ? RandomKey() : options.idempotency_key;
  payment::v1::CreatePaymentRequest pay;
  pay.set_user_id(*user_id);
  pay.set_amount(options.amount);
  pay.set_currency(options.currency);
  pay.set_idempotency_key(key);
  pay.set_description(options.description);
  payment::v1::CreatePaymentResponse created;
  status = payments->CreatePayment(Context(options, login.token()).get(), pay, &created);
  if (!status.ok()) return Fail("create payment", "paymentsvc", options.paymentsvc, status);
  std::cout << "payment " << created.payment_id() << ": " << created.amount() << " "
            << created.currency() << ", " << payment::v1::PaymentStatus_Name(created.status())
            << " (idempotency key " << key << ")\n";

  // 4. List every page of the user's payments, newest first.
  std::vector<payment::v1::Payment> listed;
  payment::v1::ListPaymentsRequest list;
  list.set_user_id(*user_id);
  list.set_page_size(100);
  do {
    payment::v1::ListPaymentsResponse page;
    status = payments->ListPayments(Context(options, login.token()).get(), list, &page);
    if (!status.ok()) return Fail("list payments", "paymentsvc", options.paymentsvc, status);
    listed.insert(listed.end(), page.payments().begin(), page.payments().end());
    list.set_page_token(page.next_page_token());
  } while (!list.page_token().empty());
  std::cout << listed.size() << " payment(s) of user " << *user_id << ":\n";
  for (const auto& p : listed) std::cout << "  " << Describe(p) << "\n";
  return 0;
}

}  // namespace
}  // namespace micro_client

int main(int argc, char** argv) {
  std::string error;
  auto options = micro_client::ParseOptions(argc, argv, error);
  if (!options) {
    std::cerr << "micro_client: " << error;
    return micro_client::kExitUsage;
  }
  if (options->help) {
    std::cout << micro_client::Usage();
    return 0;
  }
  return micro_client::Run(*options);
}
