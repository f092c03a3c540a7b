// Each file registers one family of system calls on the addon's exports.
#pragma once

#include <napi.h>

namespace ccci {

void InitLocks(Napi::Env env, Napi::Object exports);
void InitIdentity(Napi::Env env, Napi::Object exports);
void InitProcess(Napi::Env env, Napi::Object exports);

}  // namespace ccci
