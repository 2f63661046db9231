// axond: the axon node daemon. See README.md and `axond --help`.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "absl/debugging/failure_signal_handler.h"
#include "absl/debugging/symbolize.h"
#include "common/log.h"
#include "common/version.h"
#include "daemon/config/config.h"
#include "daemon/daemon.h"

int main(int argc, char** argv) {
  // A crash leaves its signal and stack in the log (stderr), for the operator.
  // Not under a sanitizer: its own handler reports more (the access, the
  // threads), and absl's, installed later, would take the signal from it.
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  absl::InitializeSymbolizer(argv[0]);
  absl::InstallFailureSignalHandler({});
#endif
  CLI::App app{
      "axond: the axon daemon. One per node; owns the network (UCX) and GPU memory "
      "registrations, and serves local clients on a Unix control socket."};
  axon::daemon::ConfigSources sources;
  std::string check_path;
  bool print_default = false;
  bool version = false;
  app.add_option("-c,--config", sources.path, "YAML config file, layered on the embedded defaults")
      ->check(CLI::ExistingFile);
  app.add_option("--set", sources.sets,
                 "Override one key, e.g. --set log.level=debug (repeatable; applied last)")
      ->type_name("KEY=VALUE")
      ->take_all();
  app.add_option("--check-config", check_path,
                 "Validate FILE (with the defaults and any --set) and exit: 0 valid, 1 not")
      ->type_name("FILE");
  app.add_flag("--print-default-config", print_default,
               "Print the fully commented default config and exit");
  app.add_flag("--version", version, "Print the version and exit");
  CLI11_PARSE(app, argc, argv);

  if (version) {
    std::cout << "axond " << axon::kVersion << "\n";
    return 0;
  }
  if (print_default) {
    std::cout << axon::daemon::DefaultConfigYaml();
    return 0;
  }
  if (!check_path.empty()) {
    sources.path = check_path;
    auto config = axon::daemon::LoadConfig(sources);
    if (!config.ok()) {
      std::cerr << "axond: invalid config: " << config.status().message() << "\n";
      return 1;
    }
    std::cout << check_path << ": valid\n";
    return 0;
  }

  axon::InitLogging("axond", spdlog::level::info);
  auto config = axon::daemon::LoadConfig(sources);
  if (!config.ok()) {
    spdlog::critical("invalid config: {}", config.status().message());
    return 1;
  }
  axon::InitLogging("axond", *axon::ParseLogLevel(config->log.level));
  auto daemon = axon::daemon::Daemon::Start(*std::move(config), std::move(sources));
  if (!daemon.ok()) {
    spdlog::critical("{}", daemon.status().message());
    return 1;
  }
  return (*daemon)->Run();
}
