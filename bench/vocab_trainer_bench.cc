// Times WordPiece vocabulary training (docs/training.md, "Vocabulary training").
//
//   vocab_trainer_bench [--vocab_size N] [--repeat K] [--out vocab.txt] FILE...
//
// Every line of every FILE is one text (for GLUE TSVs, cut the sentence column out first). The
// corpus is counted K times over (default 1) to time larger inputs. Prints the bytes counted,
// the seconds spent counting and training, and the vocabulary size.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "text/vocab_trainer.h"

int main(int argc, char** argv) {
  bertd::text::VocabTrainerOptions options;
  int repeat = 1;
  std::string out;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--vocab_size" && i + 1 < argc) {
      options.vocab_size = std::atoi(argv[++i]);
    } else if (arg == "--repeat" && i + 1 < argc) {
      repeat = std::atoi(argv[++i]);
    } else if (arg == "--out" && i + 1 < argc) {
      out = argv[++i];
    } else {
      files.push_back(arg);
    }
  }
  if (files.empty()) {
    std::fprintf(stderr, "usage: %s [--vocab_size N] [--repeat K] [--out vocab.txt] FILE...\n",
                 argv[0]);
    return 2;
  }
  std::vector<std::string> contents;
  for (const std::string& file : files) {
    absl::StatusOr<std::string> text = bertd::ReadFileToString(file);
    if (!text.ok()) {
      std::fprintf(stderr, "%s\n", std::string(text.status().message()).c_str());
      return 1;
    }
    contents.push_back(*std::move(text));
  }

  using Clock = std::chrono::steady_clock;
  bertd::text::WordPieceTrainer trainer(options);
  size_t bytes = 0;
  const auto start = Clock::now();
  for (int r = 0; r < repeat; ++r) {
    for (const std::string& text : contents) {
      for (absl::string_view line : absl::StrSplit(text, '\n')) {
        if (absl::Status status = trainer.AddText(line); !status.ok()) {
          std::fprintf(stderr, "%s\n", std::string(status.message()).c_str());
          return 1;
        }
        bytes += line.size() + 1;
      }
    }
  }
  const auto counted = Clock::now();
  absl::StatusOr<bertd::text::Vocab> vocab = trainer.Train();
  const auto trained = Clock::now();
  if (!vocab.ok()) {
    std::fprintf(stderr, "%s\n", std::string(vocab.status().message()).c_str());
    return 1;
  }
  if (!out.empty()) {
    if (absl::Status status = vocab->Save(out); !status.ok()) {
      std::fprintf(stderr, "%s\n", std::string(status.message()).c_str());
      return 1;
    }
  }
  std::printf("bytes %zu words %lld count_s %.3f train_s %.3f vocab %d\n", bytes,
              static_cast<long long>(trainer.words_counted()),
              std::chrono::duration<double>(counted - start).count(),
              std::chrono::duration<double>(trained - counted).count(), vocab->size());
  return 0;
}
