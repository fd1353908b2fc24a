#ifndef BERTD_DATA_SQUAD_H_
#define BERTD_DATA_SQUAD_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "data/dataset.h"

namespace bertd::data {

// Parses SQuAD v1.1/v2.0-style JSON (also CMRC 2018): {"data": [{"paragraphs": [{"context": ...,
// "qas": [{"id", "question", "answers": [{"text", "answer_start"}], "is_impossible"?}]}]}]}.
// answer_start counts code points of the context, and each answer must be found there. A question
// with no answers is impossible (as Hugging Face's run_qa treats it); one marked is_impossible must
// have none. Ids may be strings or integers and must be unique. `json` must be valid UTF-8.
absl::StatusOr<ParsedDataset> ParseSquadJson(absl::string_view json);

}  // namespace bertd::data

#endif  // BERTD_DATA_SQUAD_H_
