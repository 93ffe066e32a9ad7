#include "tools/measured.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <optional>
#include <set>
#include <sstream>
#include <string_view>
#include <utility>

#include "core/error.hpp"
#include "core/trace.hpp"
#include "core/version.hpp"

namespace xbar::tools {

namespace fs = std::filesystem;
using core::UserError;

namespace {

constexpr int kMaxIndex = 1000000;  // largest id parse_index_ranges accepts

// ---- CSV reading

// One field of a CSV line: its text without surrounding blanks and its 1-based character column.
struct Field {
  std::string text;
  int column = 1;
};

std::string_view trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t");
  return text.substr(first, last - first + 1);
}

// Splits on commas (no quoting: the formats hold numbers and rmp<k> names only).
std::vector<Field> split_fields(const std::string& line) {
  std::vector<Field> fields;
  std::size_t begin = 0;
  while (true) {
    const std::size_t end = std::min(line.find(',', begin), line.size());
    const std::string_view raw(line.data() + begin, end - begin);
    const auto first = raw.find_first_not_of(" \t");
    const std::size_t offset = first == std::string_view::npos ? 0 : first;
    fields.push_back({std::string(trim(raw)), static_cast<int>(begin + offset) + 1});
    if (end == line.size()) break;
    begin = end + 1;
  }
  return fields;
}

// The file's lines without line ends ("\r\n" or "\n") and without a UTF-8 byte order mark.
std::vector<std::string> read_lines(const fs::path& file) {
  std::ifstream stream(file, std::ios::binary);
  if (!stream) {
    std::error_code ec;
    if (!fs::exists(file, ec)) throw UserError(fmt::format("{}: no such file", file.string()));
    throw UserError(fmt::format("{}: cannot read the file", file.string()));
  }
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(stream, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (lines.empty() && line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);
    lines.push_back(std::move(line));
  }
  if (stream.bad()) throw UserError(fmt::format("{}: cannot read the file", file.string()));
  return lines;
}

bool is_blank(const std::string& line) { return trim(line).empty(); }

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

// The whole of `text` as a double (locale-independent; a leading '+' allowed); nullopt otherwise.
std::optional<double> parse_double(std::string_view text) {
  if (text.size() > 1 && text[0] == '+' && text[1] != '+' && text[1] != '-') text.remove_prefix(1);
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return {};
  return value;
}

// ---- ramps CSV

std::vector<devices::Ramp> read_ramp_csv(const fs::path& file, double read_voltage) {
  const std::vector<std::string> lines = read_lines(file);
  const std::string name = file.string();
  if (lines.empty() || is_blank(lines.front())) {
    throw UserError(fmt::format("{}:1:1: {}: expected the header rmp1,rmp2,...,rmpK", name,
                                lines.empty() ? "empty file" : "empty header line"));
  }

  const std::vector<Field> header = split_fields(lines.front());
  for (std::size_t k = 0; k < header.size(); ++k) {
    const std::string expected = fmt::format("rmp{}", k + 1);
    if (header[k].text != expected) {
      throw UserError(fmt::format("{}:1:{}: header field {} is '{}', expected '{}' (the columns must be named "
                                  "rmp1, rmp2, ... in order)",
                                  name, header[k].column, k + 1, header[k].text, expected));
    }
  }
  const std::size_t ramp_count = header.size();

  struct Column {
    devices::Ramp ramp;
    int end_line = 0, end_column = 0;  // where the ramp ended (0: still going)
  };
  std::vector<Column> columns(ramp_count);
  for (std::size_t k = 0; k < ramp_count; ++k) columns[k].ramp.id = static_cast<int>(k) + 1;

  std::size_t data_rows = 0;
  for (std::size_t index = 1; index < lines.size(); ++index) {
    const int line = static_cast<int>(index) + 1;
    ++data_rows;
    // A blank line is a row of empty cells (it ends every ramp still going).
    const std::vector<Field> fields = is_blank(lines[index]) ? std::vector<Field>{} : split_fields(lines[index]);
    if (fields.size() > ramp_count) {
      throw UserError(fmt::format("{}:{}:{}: {} fields, but the header names {} ramps (rmp1..rmp{})", name, line,
                                  fields[ramp_count].column, fields.size(), ramp_count, ramp_count));
    }
    for (std::size_t k = 0; k < ramp_count; ++k) {
      Column& column = columns[k];
      const bool present = k < fields.size();
      const std::string text = present ? fields[k].text : std::string();
      const int char_column =
          present ? fields[k].column : (fields.empty() ? 1 : static_cast<int>(lines[index].size()) + 1);
      const std::string where = fmt::format("{}:{}:{}: column {} (rmp{})", name, line, char_column, k + 1, k + 1);

      bool ends = text.empty() || equals_ignoring_case(text, "nan");
      double current = 0;
      if (!ends) {
        const std::optional<double> value = parse_double(text);
        if (!value) throw UserError(fmt::format("{}: '{}' is not a number (a read current in A)", where, text));
        if (!std::isfinite(*value)) throw UserError(fmt::format("{}: '{}' is not a finite current", where, text));
        if (*value < 0) throw UserError(fmt::format("{}: negative current '{}' A", where, text));
        current = *value;
        ends = current == 0;
      }
      if (ends) {
        if (column.end_line == 0) {
          column.end_line = line;
          column.end_column = char_column;
        }
        continue;
      }
      if (column.end_line != 0) {
        throw UserError(fmt::format("{}: ramp {} resumes at line {} after ending at line {} (value '{}'; an empty "
                                    "cell, NaN or 0 ends a ramp)",
                                    where, k + 1, line, column.end_line, text));
      }
      column.ramp.g.push_back(current / read_voltage);
    }
  }
  if (data_rows == 0) {
    throw UserError(fmt::format("{}:2:1: no data rows after the header: the file holds no ramps", name));
  }

  std::vector<devices::Ramp> ramps;
  ramps.reserve(ramp_count);
  for (std::size_t k = 0; k < ramp_count; ++k) {
    Column& column = columns[k];
    if (column.ramp.g.empty()) {
      throw UserError(fmt::format("{}:{}:{}: column {} (rmp{}) holds no value: its first cell ends the ramp", name,
                                  column.end_line, column.end_column, k + 1, k + 1));
    }
    ramps.push_back(std::move(column.ramp));
  }
  return ramps;
}

std::vector<MeasuredRamp> with_heldout_flags(std::vector<devices::Ramp> ramps, const std::vector<int>& heldout,
                                             const fs::path& file, const char* direction) {
  const int count = static_cast<int>(ramps.size());
  for (int id : heldout) {
    if (id < 1 || id > count) {
      throw UserError(fmt::format("held-out {} ramp {} does not exist: {} has {} ramps (rmp1..rmp{})", direction, id,
                                  file.string(), count, count));
    }
  }
  const std::set<int> held(heldout.begin(), heldout.end());
  std::vector<MeasuredRamp> result;
  result.reserve(ramps.size());
  for (devices::Ramp& ramp : ramps) {
    const bool is_heldout = held.count(ramp.id) > 0;
    result.push_back({std::move(ramp), is_heldout});
  }
  return result;
}

// ---- HDF5

const char* const kDirections[] = {"set", "reset"};

std::vector<MeasuredRamp>& direction_of(MeasuredRamps& ramps, std::string_view direction) {
  return direction == "set" ? ramps.set : ramps.reset;
}
const std::vector<MeasuredRamp>& direction_of(const MeasuredRamps& ramps, std::string_view direction) {
  return direction == "set" ? ramps.set : ramps.reset;
}

void validate_for_writing(const MeasuredRamps& ramps, const fs::path& path) {
  const auto fail = [&](const std::string& what) {
    throw UserError(fmt::format("measured data {}: {}; nothing written", path.string(), what));
  };
  if (!std::isfinite(ramps.read_voltage) || ramps.read_voltage < 0) {
    fail(fmt::format("read voltage {} V is not a finite value >= 0", ramps.read_voltage));
  }
  if (ramps.units.empty()) fail("conductance units are empty (\"S\", or \"1\" for normalised data)");
  for (const char* direction : kDirections) {
    std::set<int> ids;
    for (const MeasuredRamp& measured : direction_of(ramps, direction)) {
      const devices::Ramp& ramp = measured.ramp;
      if (!ids.insert(ramp.id).second) fail(fmt::format("{} ramp id {} appears twice", direction, ramp.id));
      if (ramp.g.empty()) fail(fmt::format("{} ramp {} has no values", direction, ramp.id));
      for (std::size_t j = 0; j < ramp.g.size(); ++j) {
        if (!std::isfinite(ramp.g[j]) || ramp.g[j] < 0) {
          fail(fmt::format("{} ramp {} value {} is {} (conductances are finite and >= 0)", direction, ramp.id, j,
                           ramp.g[j]));
        }
      }
    }
  }
}

void write_direction(core::TraceWriter& writer, const std::vector<MeasuredRamp>& ramps, const std::string& group,
                     const std::string& units) {
  std::size_t longest = 0;
  for (const MeasuredRamp& measured : ramps) longest = std::max(longest, measured.ramp.g.size());
  const auto count = static_cast<Eigen::Index>(ramps.size());
  Eigen::MatrixXd conductance =
      Eigen::MatrixXd::Constant(count, static_cast<Eigen::Index>(longest), std::numeric_limits<double>::quiet_NaN());
  std::vector<std::int32_t> length, ramp_id, heldout;
  for (Eigen::Index k = 0; k < count; ++k) {
    const MeasuredRamp& measured = ramps[static_cast<std::size_t>(k)];
    for (std::size_t j = 0; j < measured.ramp.g.size(); ++j) conductance(k, static_cast<Eigen::Index>(j)) = measured.ramp.g[j];
    length.push_back(static_cast<std::int32_t>(measured.ramp.g.size()));
    ramp_id.push_back(measured.ramp.id);
    heldout.push_back(measured.heldout ? 1 : 0);
  }
  writer.create_group(group);
  writer.write(group + "/conductance", conductance, units);
  const std::vector<std::size_t> dims{ramps.size()};
  writer.write(group + "/length", length, dims, "1");
  writer.write(group + "/ramp_id", ramp_id, dims, "1");
  writer.write(group + "/heldout", heldout, dims, "1");
}

std::vector<MeasuredRamp> read_direction(const core::TraceReader& reader, const fs::path& path,
                                         const std::string& group, const std::string& units) {
  const auto fail = [&](const std::string& what) {
    throw UserError(fmt::format("measured data {}: {}", path.string(), what));
  };
  if (!reader.exists(group)) fail(fmt::format("no group '{}'", group));
  const std::string g_path = group + "/conductance";
  const std::vector<std::size_t> g_shape = reader.shape(g_path);
  if (g_shape.size() != 2) fail(fmt::format("'{}' is {}-D; expected K×L (ramps × values)", g_path, g_shape.size()));
  const std::size_t count = g_shape[0], longest = g_shape[1];
  if (reader.units(g_path) != units) {
    fail(fmt::format("'{}' has units '{}', but /pulse_ramps says '{}'", g_path, reader.units(g_path), units));
  }

  const auto read_ints = [&](const char* name) {
    const std::string dataset = group + "/" + name;
    const std::vector<std::size_t> shape = reader.shape(dataset);
    if (shape.size() != 1 || shape[0] != count) {
      fail(fmt::format("'{}' has shape {}, expected {} values (one per row of '{}')", dataset,
                       shape.empty() ? std::string("scalar") : fmt::format("{}", fmt::join(shape, "×")), count,
                       g_path));
    }
    return reader.read_matrix_int(dataset);
  };
  const core::MatrixI length = read_ints("length");
  const core::MatrixI ramp_id = read_ints("ramp_id");
  const core::MatrixI heldout = read_ints("heldout");
  const Eigen::MatrixXd conductance = count == 0 ? Eigen::MatrixXd(0, 0) : reader.read_matrix(g_path);

  std::vector<MeasuredRamp> ramps(count);
  std::set<int> ids;
  for (std::size_t k = 0; k < count; ++k) {
    const auto row = static_cast<Eigen::Index>(k);
    const int n = length(row, 0);
    if (n < 1 || static_cast<std::size_t>(n) > longest) {
      fail(fmt::format("'{}/length' row {} is {}, outside 1..{}", group, k, n, longest));
    }
    if (heldout(row, 0) != 0 && heldout(row, 0) != 1) {
      fail(fmt::format("'{}/heldout' row {} is {}, expected 0 or 1", group, k, heldout(row, 0)));
    }
    if (!ids.insert(ramp_id(row, 0)).second) {
      fail(fmt::format("'{}/ramp_id' holds ramp id {} twice", group, ramp_id(row, 0)));
    }
    MeasuredRamp& measured = ramps[k];
    measured.ramp.id = ramp_id(row, 0);
    measured.heldout = heldout(row, 0) == 1;
    for (std::size_t j = 0; j < longest; ++j) {
      const double value = conductance(row, static_cast<Eigen::Index>(j));
      if (j < static_cast<std::size_t>(n)) {
        if (!std::isfinite(value)) {
          fail(fmt::format("'{}' row {} (ramp {}) value {} is {} within the ramp's length {}", g_path, k,
                           measured.ramp.id, j, value, n));
        }
        measured.ramp.g.push_back(value);
      } else if (!std::isnan(value)) {
        fail(fmt::format("'{}' row {} (ramp {}) holds {} at {}, after the ramp's end (length {}): expected NaN",
                         g_path, k, measured.ramp.id, value, j, n));
      }
    }
  }
  return ramps;
}

// ---- summary

std::string format_siemens(double g) {
  const double magnitude = std::abs(g);
  if (magnitude >= 1 || magnitude == 0) return fmt::format("{:.4g} S", g);
  if (magnitude >= 1e-3) return fmt::format("{:.4g} mS", g * 1e3);
  if (magnitude >= 1e-6) return fmt::format("{:.4g} µS", g * 1e6);
  return fmt::format("{:.4g} nS", g * 1e9);
}

std::string direction_summary(const std::vector<MeasuredRamp>& ramps, const char* name) {
  const auto held = std::count_if(ramps.begin(), ramps.end(), [](const MeasuredRamp& r) { return r.heldout; });
  return fmt::format("{} {} ramps ({} fitting, {} held out)", ramps.size(), name,
                     static_cast<long>(ramps.size()) - held, held);
}

// The licence's first non-blank line (e.g. "MIT License"), for the summary.
std::string licence_title(const std::string& licence) {
  std::istringstream lines(licence);
  std::string line;
  while (std::getline(lines, line)) {
    std::string_view title = trim(line);
    while (!title.empty() && (title.back() == ':' || title.back() == '.')) title.remove_suffix(1);
    if (!title.empty()) return std::string(title);
  }
  return "unknown";
}

std::size_t pulse_steps(const std::vector<MeasuredRamp>& ramps) {
  std::size_t steps = 0;
  for (const MeasuredRamp& measured : ramps) steps += measured.ramp.g.empty() ? 0 : measured.ramp.g.size() - 1;
  return steps;
}

}  // namespace

// ---- import

MeasuredRamps import_ramp_csv(const fs::path& set_csv, const fs::path& reset_csv, double read_voltage,
                              const std::vector<int>& heldout_set, const std::vector<int>& heldout_reset) {
  if (!std::isfinite(read_voltage) || read_voltage <= 0) {
    throw UserError(fmt::format("read voltage must be a finite value > 0 V, got {}", read_voltage));
  }
  MeasuredRamps result;
  result.set = with_heldout_flags(read_ramp_csv(set_csv, read_voltage), heldout_set, set_csv, "SET");
  result.reset = with_heldout_flags(read_ramp_csv(reset_csv, read_voltage), heldout_reset, reset_csv, "RESET");
  result.read_voltage = read_voltage;
  result.units = "S";
  result.source = fmt::format("set: {}; reset: {}", set_csv.string(), reset_csv.string());
  result.licence = "unknown";
  result.description = fmt::format(
      "Pulse ramps: a device pulsed repeatedly with identical SET (set/) or RESET (reset/) pulses and read at {} V "
      "after every pulse; conductance = read current / read voltage. Ramp ids are the CSV column numbers "
      "(rmp<k>); the first read of a ramp is its starting state.",
      read_voltage);
  return result;
}

MeasuredRamps import_pulse_response(const fs::path& csv, double g_min, double g_max, int segment) {
  if (!std::isfinite(g_min) || !std::isfinite(g_max) || g_min < 0 || g_min >= g_max) {
    throw UserError(fmt::format("conductance range: need 0 <= g_min < g_max (S), got g_min = {}, g_max = {}", g_min,
                                g_max));
  }
  if (segment < 2) throw UserError(fmt::format("segment: need at least 2 pulses per ramp, got {}", segment));

  const std::vector<std::string> lines = read_lines(csv);
  const std::string name = csv.string();
  std::size_t rows = lines.size();
  while (rows > 0 && is_blank(lines[rows - 1])) --rows;  // trailing blank lines
  if (rows == 0) throw UserError(fmt::format("{}:1:1: empty file: expected rows 'up,down' of normalised states", name));

  std::vector<double> up, down;
  for (std::size_t index = 0; index < rows; ++index) {
    const int line = static_cast<int>(index) + 1;
    const std::vector<Field> fields = split_fields(lines[index]);
    if (fields.size() != 2) {
      throw UserError(fmt::format("{}:{}:{}: expected 2 values (state after an up pulse, after a down pulse), got {}",
                                  name, line, fields.size() > 2 ? fields[2].column : 1,
                                  is_blank(lines[index]) ? 0 : fields.size()));
    }
    for (std::size_t c = 0; c < 2; ++c) {
      const Field& field = fields[c];
      const std::string where =
          fmt::format("{}:{}:{}: column {} ({})", name, line, field.column, c + 1, c == 0 ? "up" : "down");
      const std::optional<double> value = parse_double(field.text);
      if (!value || !std::isfinite(*value)) {
        throw UserError(fmt::format("{}: '{}' is not a finite number", where, field.text));
      }
      if (std::abs(*value) > kNormalisedStateLimit) {
        throw UserError(fmt::format("{}: normalised state '{}' lies outside [-{}, {}]: the file does not hold "
                                    "normalised states",
                                    where, field.text, kNormalisedStateLimit, kNormalisedStateLimit));
      }
      (c == 0 ? up : down).push_back(*value);
    }
  }
  if (rows < 2) throw UserError(fmt::format("{}: {} row; need at least 2 to hold a pulse step", name, rows));

  const auto [lo_up, hi_up] = std::minmax_element(up.begin(), up.end());
  const auto [lo_down, hi_down] = std::minmax_element(down.begin(), down.end());
  const double w_lo = std::min({-1.0, *lo_up, *lo_down});
  const double w_hi = std::max({1.0, *hi_up, *hi_down});
  const auto to_conductance = [&](double w) {
    return std::clamp(g_min + (w - w_lo) / (w_hi - w_lo) * (g_max - g_min), g_min, g_max);  // clamp: rounding only
  };

  const auto cut = [&](const std::vector<double>& column) {
    std::vector<MeasuredRamp> ramps;
    const std::size_t n = column.size(), width = static_cast<std::size_t>(segment);
    for (std::size_t s = 0; s * width < n; ++s) {
      const std::size_t first = s == 0 ? 0 : s * width - 1;  // the state before the segment's first pulse
      const std::size_t end = std::min(n, (s + 1) * width);
      MeasuredRamp measured;
      measured.ramp.id = static_cast<int>(s) + 1;
      for (std::size_t i = first; i < end; ++i) measured.ramp.g.push_back(to_conductance(column[i]));
      measured.heldout = s % 3 == 2;
      ramps.push_back(std::move(measured));
    }
    return ramps;
  };

  MeasuredRamps result;
  result.set = cut(up);
  result.reset = cut(down);
  result.read_voltage = 0;
  result.units = "S";
  result.source = name;
  result.licence = "unknown";
  result.description = fmt::format(
      "Normalised pulse response ({} up pulses in set/, {} down pulses in reset/), mapped linearly from normalised "
      "states [{}, {}] (the nominal [-1, 1] widened to the file's extremes) onto [{}, {}] S. Each column cut into "
      "ramps of {} pulses; a ramp starts from the last state of the previous one (ramp 1 from the state after pulse "
      "1); ramps 3, 6, 9, ... are held out. No read voltage (read_voltage = 0).",
      up.size(), down.size(), w_lo, w_hi, g_min, g_max, segment);
  return result;
}

std::vector<int> parse_index_ranges(const std::string& text, const std::string& option) {
  std::set<int> ids;
  if (trim(text).empty()) return {};
  const auto parse_id = [&](std::string_view item, std::string_view token) {
    const std::string_view digits = trim(token);
    int value = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || value < 1 || value > kMaxIndex) {
      throw UserError(fmt::format("{}: '{}' in '{}' is not an id from 1 to {} (expected e.g. 1-27,30,33-35)", option,
                                  item, text, kMaxIndex));
    }
    return value;
  };
  std::size_t begin = 0;
  while (true) {
    const std::size_t end = std::min(text.find(',', begin), text.size());
    const std::string_view item = trim(std::string_view(text).substr(begin, end - begin));
    if (item.empty()) {
      throw UserError(fmt::format("{}: empty item in '{}' (expected e.g. 1-27,30,33-35)", option, text));
    }
    const std::size_t dash = item.find('-');
    if (dash == std::string_view::npos) {
      ids.insert(parse_id(item, item));
    } else {
      const int first = parse_id(item, item.substr(0, dash));
      const int last = parse_id(item, item.substr(dash + 1));
      if (first > last) {
        throw UserError(fmt::format("{}: range '{}' in '{}' ends before it starts", option, item, text));
      }
      for (int id = first; id <= last; ++id) ids.insert(id);
    }
    if (end == text.size()) break;
    begin = end + 1;
  }
  return {ids.begin(), ids.end()};
}

// ---- HDF5

void write_measured(const MeasuredRamps& ramps, const fs::path& path) {
  validate_for_writing(ramps, path);
  core::TraceWriter writer(path);
  writer.set_attribute("/", "kind", std::string("measured"));
  writer.set_attribute("/", "source", ramps.source);
  writer.set_attribute("/", "licence", ramps.licence);
  writer.set_attribute("/", "description", ramps.description);
  writer.set_attribute("/", "xbar_version", std::string(core::kVersion));
  writer.create_group("/pulse_ramps");
  writer.set_attribute("/pulse_ramps", "read_voltage", ramps.read_voltage);
  writer.set_attribute("/pulse_ramps", "units", ramps.units);
  for (const char* direction : kDirections) {
    write_direction(writer, direction_of(ramps, direction), std::string("/pulse_ramps/") + direction, ramps.units);
  }
  writer.commit();
}

MeasuredRamps read_measured(const fs::path& path) {
  const core::TraceReader reader(path);
  const std::string kind = reader.attribute_string("/", "kind");
  if (kind != "measured") {
    throw UserError(fmt::format("measured data {}: root attribute 'kind' is '{}', expected 'measured'",
                                path.string(), kind));
  }
  MeasuredRamps ramps;
  ramps.source = reader.attribute_string("/", "source");
  ramps.licence = reader.attribute_string("/", "licence");
  ramps.description = reader.attribute_string("/", "description");
  if (!reader.exists("/pulse_ramps")) {
    throw UserError(fmt::format("measured data {}: no group '/pulse_ramps' (the file holds no pulse ramps)",
                                path.string()));
  }
  ramps.read_voltage = reader.attribute_double("/pulse_ramps", "read_voltage");
  ramps.units = reader.attribute_string("/pulse_ramps", "units");
  for (const char* direction : kDirections) {
    direction_of(ramps, direction) =
        read_direction(reader, path, std::string("/pulse_ramps/") + direction, ramps.units);
  }
  return ramps;
}

devices::RampData split_ramps(const MeasuredRamps& ramps, const std::string& split) {
  if (split != "fit" && split != "heldout" && split != "all") {
    throw UserError(fmt::format("unknown split '{}': expected fit, heldout or all", split));
  }
  const auto keep = [&](const MeasuredRamp& measured) {
    return split == "all" || (split == "heldout") == measured.heldout;
  };
  devices::RampData data;
  data.units = ramps.units;
  for (const MeasuredRamp& measured : ramps.set)
    if (keep(measured)) data.set.push_back(measured.ramp);
  for (const MeasuredRamp& measured : ramps.reset)
    if (keep(measured)) data.reset.push_back(measured.ramp);
  return data;
}

// ---- command line

std::string measured_summary(const MeasuredRamps& ramps, const fs::path& output) {
  double g_lo = std::numeric_limits<double>::infinity(), g_hi = -g_lo;
  for (const auto* direction : {&ramps.set, &ramps.reset}) {
    for (const MeasuredRamp& measured : *direction) {
      for (double g : measured.ramp.g) {
        g_lo = std::min(g_lo, g);
        g_hi = std::max(g_hi, g);
      }
    }
  }
  const std::string range = g_lo <= g_hi ? fmt::format("conductance {} to {}", format_siemens(g_lo), format_siemens(g_hi))
                                         : std::string("no conductance values");
  const std::string read = ramps.read_voltage > 0 ? fmt::format(" (read at {} V)", ramps.read_voltage) : "";
  return fmt::format(
      "Wrote {}: {} and {}; {}{}; {} SET and {} RESET pulse steps (the first value of each ramp is its starting "
      "state). Source: {}; licence: {}.\n",
      output.string(), direction_summary(ramps.set, "SET"), direction_summary(ramps.reset, "RESET"), range, read,
      pulse_steps(ramps.set), pulse_steps(ramps.reset), ramps.source,
      licence_title(ramps.licence));
}

std::string read_licence(const fs::path& file) {
  if (file.empty()) return "unknown";
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) throw UserError(fmt::format("--licence {}: no such file", file.string()));
  std::ifstream stream(file, std::ios::binary);
  std::stringstream text;
  text << stream.rdbuf();
  if (!stream) throw UserError(fmt::format("--licence {}: cannot read the file", file.string()));
  return text.str();
}

std::string import_ramps_command(const ImportRampsOptions& options) {
  const std::vector<int> heldout_set = parse_index_ranges(options.heldout_set, "--heldout-set");
  const std::vector<int> heldout_reset = parse_index_ranges(options.heldout_reset, "--heldout-reset");
  MeasuredRamps ramps =
      import_ramp_csv(options.set_csv, options.reset_csv, options.read_voltage, heldout_set, heldout_reset);
  ramps.licence = read_licence(options.licence_file);
  if (!options.description.empty()) ramps.description = options.description;
  write_measured(ramps, options.output);
  return measured_summary(ramps, options.output);
}

std::string import_pulse_response_command(const ImportPulseResponseOptions& options) {
  MeasuredRamps ramps = import_pulse_response(options.csv, options.g_min, options.g_max, options.segment);
  ramps.licence = read_licence(options.licence_file);
  if (!options.description.empty()) ramps.description = options.description;
  write_measured(ramps, options.output);
  return measured_summary(ramps, options.output);
}

}  // namespace xbar::tools
