#include <napi.h>

#include "native.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  ccci::InitLockfile(env, exports);
  ccci::InitWaiter(env, exports);
  ccci::InitIdentity(env, exports);
  ccci::InitProcess(env, exports);
  ccci::InitDir(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(cc_ci, Init)
