#include "common/rpc/auth.h"

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace busyfleet {

absl::StatusOr<std::string> ReadTokenFile(absl::string_view flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": cannot read token file ", path));
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string token(absl::StripAsciiWhitespace(buffer.str()));
  if (token.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": token file ", path, " is empty"));
  }
  if (token.size() > 4096) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": token in ", path, " is longer than 4096 bytes"));
  }
  for (const char c : token) {
    if (static_cast<unsigned char>(c) < 0x21 || static_cast<unsigned char>(c) > 0x7e) {
      return absl::InvalidArgumentError(absl::StrCat(
          flag, ": token in ", path, " must be printable ASCII without spaces (it travels as gRPC metadata)"));
    }
  }
  return token;
}

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  const size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

std::string BearerValue(absl::string_view token) { return absl::StrCat("Bearer ", token); }

absl::string_view RoleName(Role role) {
  switch (role) {
    case Role::kWorker:
      return "worker";
    case Role::kClient:
      return "client";
    case Role::kViewer:
      return "viewer";
  }
  return "unknown";
}

namespace {

// The end of a PERMISSION_DENIED message: what a call needing `role` does.
absl::string_view WhatRoleMayDo(Role role) {
  switch (role) {
    case Role::kWorker:
      return "attach as a worker";
    case Role::kClient:
      return "do this (it needs the client token)";
    case Role::kViewer:
      return "read (it needs a viewer or client token)";
  }
  return "do this";
}

}  // namespace

absl::StatusOr<TokenAuthenticator> TokenAuthenticator::Create(std::string worker_token, std::string client_token,
                                                              std::string viewer_token) {
  if (worker_token.empty() != client_token.empty()) {
    return absl::InvalidArgumentError(
        "give both a worker token and a client token (--worker-token-file and --client-token-file), "
        "or one --token-file for both: one role must not be left open");
  }
  if (!viewer_token.empty() && worker_token.empty()) {
    return absl::InvalidArgumentError(
        "--viewer-token-file needs the worker and client tokens too (--worker-token-file and "
        "--client-token-file, or --token-file): without them every call is open anyway");
  }
  TokenAuthenticator a;
  a.worker_token_ = std::move(worker_token);
  a.client_token_ = std::move(client_token);
  a.viewer_token_ = std::move(viewer_token);
  return a;
}

absl::Status TokenAuthenticator::Check(Role role,
                                       const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) const {
  if (!enabled()) return absl::OkStatus();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) {
    return absl::UnauthenticatedError("missing authorization metadata (a bearer token is required)");
  }
  const absl::string_view value(it->second.data(), it->second.size());
  return CheckAuthorization(role, &value);
}

absl::Status TokenAuthenticator::CheckAuthorization(Role role, const absl::string_view* value) const {
  if (!enabled()) return absl::OkStatus();
  if (value == nullptr) return absl::UnauthenticatedError("missing authorization (a bearer token is required)");
  constexpr absl::string_view kBearer = "Bearer ";
  if (!absl::StartsWithIgnoreCase(*value, kBearer)) {
    return absl::UnauthenticatedError("authorization must be \"Bearer <token>\"");
  }
  return CheckToken(role, value->substr(kBearer.size()));
}

absl::Status TokenAuthenticator::CheckToken(Role role, absl::string_view token) const {
  if (!enabled()) return absl::OkStatus();
  // Every comparison runs, whatever matches, so the time says nothing about
  // which role a token has.
  const bool is_worker = ConstantTimeEquals(token, worker_token_);
  const bool is_client = ConstantTimeEquals(token, client_token_);
  const bool is_viewer = !viewer_token_.empty() && ConstantTimeEquals(token, viewer_token_);
  bool allowed = false;
  switch (role) {
    case Role::kWorker:
      allowed = is_worker;
      break;
    case Role::kClient:
      allowed = is_client;
      break;
    case Role::kViewer:
      allowed = is_client || is_viewer;  // the client role includes the viewer's
      break;
  }
  if (allowed) return absl::OkStatus();
  if (is_worker || is_client || is_viewer) {
    const Role held = is_client ? Role::kClient : (is_viewer ? Role::kViewer : Role::kWorker);
    return absl::PermissionDeniedError(absl::StrCat("a ", RoleName(held), " token cannot ", WhatRoleMayDo(role)));
  }
  return absl::UnauthenticatedError("invalid token");
}

}  // namespace busyfleet
