// bertctl: bertd's command-line client. See docs/cli.md.
#include <cstdio>
#include <cstdlib>

#include <CLI/CLI.hpp>

#include "bertctl/commands.h"
#include "bertctl/output.h"

int main(int argc, char** argv) {
  using namespace bertd::bertctl;
  CLI::App app{"bertctl: command-line client of bertd (inference, models, datasets, training jobs)",
               "bertctl"};
  app.require_subcommand(1);
  // Global flags also work after the command: `bertctl classify x -m m -o json`.
  app.fallthrough();
  app.set_version_flag("--version", std::string("bertctl ") + BERTCTL_VERSION);
  Globals globals;
  auto& c = globals.connection;
  app.add_option("-s,--server", c.server, "bertd address host:port")
      ->envname("BERTD_ADDR")
      ->capture_default_str();
  app.add_option("--token", c.token, "Bearer token sent as authorization metadata")
      ->envname("BERTD_TOKEN");
  std::string token_file;
  app.add_option("--token-file", token_file,
                 "File holding the bearer token (keeps it out of the process list)")
      ->envname("BERTD_TOKEN_FILE");
  app.add_option("--timeout", c.timeout_seconds, "Per-request deadline in seconds (0: none)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("-o,--output", globals.output, "table or json")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  app.add_option("--tls-ca", c.tls_ca, "PEM roots to verify the server (enables TLS)");
  app.add_option("--tls-cert", c.tls_cert, "PEM client certificate (enables TLS)");
  app.add_option("--tls-key", c.tls_key, "PEM client key (with --tls-cert)");
  app.add_option("--tls-server-name", c.tls_server_name,
                 "Name to verify in the server's certificate instead of the --server host");

  Commands commands;
  AddInferenceCommands(app, globals, commands);
  AddModelCommands(app, globals, commands);
  AddDatasetCommands(app, globals, commands);
  AddJobCommands(app, globals, commands);
  AddServerCommands(app, globals, commands);
  AddTokenCommands(app, globals, commands);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // prints help, the version or the error
    return code == 0 ? kExitOk : kExitUsage;
  }
  if (!token_file.empty() && c.token.empty()) {
    auto token = bertd::client::ReadTokenFile(token_file);
    if (!token.ok()) return Fail(std::string(token.status().message()));
    c.token = *std::move(token);
  }
  try {
    const int code = commands.RunParsed();
    std::fflush(stdout);
    return code < 0 ? kExitUsage : code;
  } catch (const UsageError& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "bertctl: %s\nRun with --help for more information.\n", e.what());
    return kExitUsage;
  }
}
