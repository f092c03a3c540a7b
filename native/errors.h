// Errors in Node's own shape, built in one place so every native failure looks like an fs error:
// `EBADF: bad file descriptor, flock` with `code`, `errno` (negative, as libuv reports it),
// `syscall`, and `path` when one is involved.
#pragma once

#include <napi.h>

#include <string>

namespace ccci {

Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall, const char* path = nullptr);

// Same shape for a refusal we decide ourselves (e.g. a lockfile that is a FIFO): `uvcode` is a
// libuv error code (UV_EFTYPE, UV_EPERM, ...), the message says what was wrong.
Napi::Error CodedError(Napi::Env env, int uvcode, const char* syscall, const std::string& why,
                       const char* path = nullptr);

// Argument checks: TypeError / RangeError with Node's ERR_INVALID_ARG_* codes.
bool CheckFd(const Napi::CallbackInfo& info, size_t index, int* fd);
bool CheckInt(const Napi::CallbackInfo& info, size_t index, const char* name, int64_t min,
              int64_t max, int64_t* out);
bool CheckString(const Napi::CallbackInfo& info, size_t index, const char* name, std::string* out);
void ThrowArgError(Napi::Env env, const char* code, const std::string& message, bool range = false);

}  // namespace ccci
