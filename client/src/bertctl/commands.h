#ifndef BERTD_CLIENT_BERTCTL_COMMANDS_H_
#define BERTD_CLIENT_BERTCTL_COMMANDS_H_

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "bertctl/output.h"
#include "bertd/v1/datasets.pb.h"

namespace bertd::bertctl {

// Leaf subcommands and what to run when one was parsed; each returns an exit code.
class Commands {
 public:
  void Add(CLI::App* command, std::function<int()> action) {
    actions_.emplace_back(command, std::move(action));
  }
  // Runs the parsed leaf command; -1 when none was given.
  int RunParsed() const {
    for (const auto& [command, action] : actions_) {
      if (command->parsed()) return action();
    }
    return -1;
  }

 private:
  std::vector<std::pair<CLI::App*, std::function<int()>>> actions_;
};

void AddInferenceCommands(CLI::App& app, Globals& globals, Commands& commands);
void AddModelCommands(CLI::App& app, Globals& globals, Commands& commands);
void AddDatasetCommands(CLI::App& app, Globals& globals, Commands& commands);
void AddJobCommands(CLI::App& app, Globals& globals, Commands& commands);
void AddServerCommands(CLI::App& app, Globals& globals, Commands& commands);
void AddTokenCommands(CLI::App& app, Globals& globals, Commands& commands);

// How to read a local file into a dataset (datasets upload, submit-job).
struct DatasetFileOptions {
  std::string name;
  std::string format;
  bool header = false;
  CLI::Option* header_flag = nullptr;  // set by AddFlags; count() says whether it was given
  std::string text, text_pair, label;
  std::vector<std::string> labels;

  // Registers --format --header/--no-header --text --text-pair --label --labels on `command`.
  void AddFlags(CLI::App* command);
};

// Uploads `path` in 1 MiB chunks (a progress bar on stderr when it is a terminal). With
// `reuse_existing`, a dataset of the same name is taken as the same upload (names then carry a
// content tag). On failure prints the error and returns false.
bool UploadDatasetFile(Globals& globals, const std::string& path, const DatasetFileOptions& options,
                       bool reuse_existing, v1::Dataset* dataset);

}  // namespace bertd::bertctl

#endif  // BERTD_CLIENT_BERTCTL_COMMANDS_H_
