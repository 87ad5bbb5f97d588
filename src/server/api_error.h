// Errors as the OpenAI API reports them: an HTTP status and
//   {"error": {"message": str, "type": str, "param": str|null, "code": str|null}}
// Request validation throws ApiError; the server turns it into that body with that status and
// keeps serving.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "common/error.h"

namespace gpt2::server {

struct ApiError : Error {
  ApiError(int status_, std::string message, std::string param_ = "", std::string code_ = "",
           std::string type_ = "")
      : Error(message), status(status_), param(std::move(param_)), code(std::move(code_)),
        type(type_.empty() ? default_type(status_) : std::move(type_)) {}

  int status;         // 400, 401, 404, 405, 413, 503, ...
  std::string param;  // the request field at fault, "" for none (null in the body)
  std::string code;   // a machine-readable code, "" for none (null in the body)
  std::string type;   // "invalid_request_error", "authentication_error", "server_error", ...

  // OpenAI's types by status: 4xx are the client's (invalid_request_error, 401 authentication),
  // 5xx the server's.
  static std::string default_type(int status) {
    if (status == 401) return "authentication_error";
    if (status >= 500) return "server_error";
    return "invalid_request_error";
  }
};

// The error body for an error.
inline nlohmann::ordered_json error_json(const std::string& message, const std::string& type,
                                         const std::string& param, const std::string& code) {
  nlohmann::ordered_json e;
  e["message"] = message;
  e["type"] = type;
  e["param"] = param.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(param);
  e["code"] = code.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(code);
  nlohmann::ordered_json body;
  body["error"] = std::move(e);
  return body;
}

inline nlohmann::ordered_json error_json(const ApiError& e) { return error_json(e.what(), e.type, e.param, e.code); }

}  // namespace gpt2::server
