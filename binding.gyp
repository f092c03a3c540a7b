{
  "targets": [
    {
      "target_name": "cc_ci",
      "sources": [
        "native/addon.cc",
        "native/errors.cc",
        "native/lockfile.cc",
        "native/waiter.cc",
        "native/identity.cc",
        "native/process.cc",
        "native/dir.cc"
      ],
      "actions": [
        {
          "action_name": "source_hash",
          "inputs": [
            "binding.gyp",
            "native/load.cjs",
            "<!@(node -p \"require('fs').readdirSync('native').filter((n) => /\\.(cc|h)$/.test(n)).map((n) => 'native/' + n).join(' ')\")"
          ],
          "outputs": ["<(SHARED_INTERMEDIATE_DIR)/source-hash.h"],
          "action": ["node", "native/load.cjs", "--header", "<(SHARED_INTERMEDIATE_DIR)/source-hash.h"]
        }
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "<(SHARED_INTERMEDIATE_DIR)"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-O2"],
      "libraries": ["-lpthread"]
    }
  ]
}
