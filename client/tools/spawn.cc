#include "client/tools/spawn.h"

#include <fcntl.h>
#include <spawn.h>

#include <cstring>

#include "absl/strings/str_cat.h"

extern char** environ;

namespace axon::tools {

absl::StatusOr<pid_t> SpawnWithOutput(const std::vector<std::string>& args,
                                      const std::vector<std::string>& extra_env,
                                      const std::string& out_path, const std::string& err_path) {
  if (args.empty()) return absl::InvalidArgumentError("nothing to start");
  std::vector<std::string> envs;
  for (char** e = environ; *e != nullptr; ++e) envs.emplace_back(*e);
  envs.insert(envs.end(), extra_env.begin(), extra_env.end());
  std::vector<char*> argv, envp;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (auto& e : envs) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  if (err_path == out_path) {
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
  } else {
    posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
  }
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, args[0].c_str(), &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0)
    return absl::InternalError(absl::StrCat("cannot start ", args[0], ": ", strerror(rc)));
  return pid;
}

}  // namespace axon::tools
