// json.cc: see json.h. The parser is RFC 8259's grammar, recursive descent, with a depth
// limit so that a hostile line cannot exhaust the stack.
#include "json.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace allocscope::cmd {
namespace {

constexpr int kMaxDepth = 64;

// Appends code point `cp` as UTF-8.
void AppendUtf8(std::string *out, uint32_t cp) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | cp >> 6));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | cp >> 12));
    out->push_back(static_cast<char>(0x80 | (cp >> 6 & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | cp >> 18));
    out->push_back(static_cast<char>(0x80 | (cp >> 12 & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp >> 6 & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// The length of the UTF-8 sequence at the start of `s`, 0 if it is not a valid one.
size_t Utf8Length(absl::string_view s) {
  const auto b = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  const auto cont = [&](size_t i) { return i < s.size() && (b(i) & 0xC0) == 0x80; };
  const unsigned char c = b(0);
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    if (c == 0xE0 && b(1) < 0xA0) return 0;   // overlong
    if (c == 0xED && b(1) >= 0xA0) return 0;  // a surrogate
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (c == 0xF0 && b(1) < 0x90) return 0;   // overlong
    if (c == 0xF4 && b(1) >= 0x90) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;
}

class Parser {
 public:
  explicit Parser(absl::string_view text) : text_(text) {}

  absl::StatusOr<Json> ParseDocument() {
    absl::StatusOr<Json> value = ParseValue(0);
    if (!value.ok()) return value;
    SkipBlanks();
    if (pos_ != text_.size()) return Error("text after the value");
    return value;
  }

 private:
  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat("JSON: ", what, " at offset ", pos_));
  }

  void SkipBlanks() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r'))
      ++pos_;
  }

  bool Consume(absl::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  absl::StatusOr<Json> ParseValue(int depth) {
    if (depth > kMaxDepth) return Error("nesting too deep");
    SkipBlanks();
    if (pos_ >= text_.size()) return Error("unexpected end");
    const char c = text_[pos_];
    if (c == '{') return ParseObject(depth);
    if (c == '[') return ParseArray(depth);
    if (c == '"') {
      absl::StatusOr<std::string> s = ParseString();
      if (!s.ok()) return s.status();
      return Json(*std::move(s));
    }
    if (Consume("true")) return Json(true);
    if (Consume("false")) return Json(false);
    if (Consume("null")) return Json();
    if (c == '-' || (c >= '0' && c <= '9')) return ParseNumber();
    return Error("unexpected character");
  }

  absl::StatusOr<Json> ParseObject(int depth) {
    ++pos_;  // {
    Json object{Json::Object{}};
    SkipBlanks();
    if (Consume("}")) return object;
    while (true) {
      SkipBlanks();
      if (pos_ >= text_.size() || text_[pos_] != '"') return Error("expected a key");
      absl::StatusOr<std::string> key = ParseString();
      if (!key.ok()) return key.status();
      SkipBlanks();
      if (!Consume(":")) return Error("expected ':'");
      absl::StatusOr<Json> value = ParseValue(depth + 1);
      if (!value.ok()) return value;
      object.set(*std::move(key), *std::move(value));
      SkipBlanks();
      if (Consume("}")) return object;
      if (!Consume(",")) return Error("expected ',' or '}'");
    }
  }

  absl::StatusOr<Json> ParseArray(int depth) {
    ++pos_;  // [
    Json array{Json::Array{}};
    SkipBlanks();
    if (Consume("]")) return array;
    while (true) {
      absl::StatusOr<Json> value = ParseValue(depth + 1);
      if (!value.ok()) return value;
      array.push(*std::move(value));
      SkipBlanks();
      if (Consume("]")) return array;
      if (!Consume(",")) return Error("expected ',' or ']'");
    }
  }

  bool Hex4(uint32_t *out) {
    if (pos_ + 4 > text_.size()) return false;
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = text_[pos_ + i];
      const int d = c >= '0' && c <= '9'   ? c - '0'
                    : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                           : -1;
      if (d < 0) return false;
      v = v << 4 | static_cast<uint32_t>(d);
    }
    pos_ += 4;
    *out = v;
    return true;
  }

  absl::StatusOr<std::string> ParseString() {
    ++pos_;  // "
    std::string out;
    while (pos_ < text_.size()) {
      const char c = text_[pos_];
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (static_cast<unsigned char>(c) < 0x20) return Error("control character in a string");
      if (c != '\\') {
        const size_t n = Utf8Length(text_.substr(pos_));
        if (n == 0) return Error("invalid UTF-8");
        absl::StrAppend(&out, text_.substr(pos_, n));
        pos_ += n;
        continue;
      }
      if (++pos_ >= text_.size()) break;
      const char e = text_[pos_++];
      switch (e) {
        case '"':
          out.push_back('"');
          break;
        case '\\':
          out.push_back('\\');
          break;
        case '/':
          out.push_back('/');
          break;
        case 'b':
          out.push_back('\b');
          break;
        case 'f':
          out.push_back('\f');
          break;
        case 'n':
          out.push_back('\n');
          break;
        case 'r':
          out.push_back('\r');
          break;
        case 't':
          out.push_back('\t');
          break;
        case 'u': {
          uint32_t cp;
          if (!Hex4(&cp)) return Error("bad \\u escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t low;
            if (!Consume("\\u") || !Hex4(&low) || low < 0xDC00 || low > 0xDFFF)
              return Error("unpaired surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return Error("unpaired surrogate");
          }
          AppendUtf8(&out, cp);
          break;
        }
        default:
          return Error("bad escape");
      }
    }
    return Error("unterminated string");
  }

  absl::StatusOr<Json> ParseNumber() {
    const size_t start = pos_;
    bool integral = true;
    if (text_[pos_] == '-') ++pos_;
    const auto digits = [&] {
      const size_t from = pos_;
      while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') ++pos_;
      return pos_ > from;
    };
    if (pos_ < text_.size() && text_[pos_] == '0') {
      ++pos_;
    } else if (!digits()) {
      return Error("bad number");
    }
    if (pos_ < text_.size() && text_[pos_] == '.') {
      ++pos_;
      integral = false;
      if (!digits()) return Error("bad number");
    }
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      ++pos_;
      integral = false;
      if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
      if (!digits()) return Error("bad number");
    }
    const std::string number(text_.substr(start, pos_ - start));
    if (integral) {
      errno = 0;
      char *end;
      const long long n = strtoll(number.c_str(), &end, 10);
      if (errno == 0) return Json(static_cast<int64_t>(n));
    }
    return Json(strtod(number.c_str(), nullptr));
  }

  absl::string_view text_;
  size_t pos_ = 0;
};

void Newline(std::string *out, int indent, int depth) {
  if (indent <= 0) return;
  out->push_back('\n');
  out->append(static_cast<size_t>(indent * depth), ' ');
}

}  // namespace

const Json *Json::find(absl::string_view key) const {
  if (!is_object()) return nullptr;
  for (const auto &[k, v] : as_object())
    if (k == key) return &v;
  return nullptr;
}

std::string Json::Dump(int indent) const {
  std::string out;
  DumpTo(&out, indent, 0);
  return out;
}

void Json::DumpTo(std::string *out, int indent, int depth) const {
  if (is_null()) {
    out->append("null");
  } else if (is_bool()) {
    out->append(as_bool() ? "true" : "false");
  } else if (is_int()) {
    absl::StrAppend(out, as_int());
  } else if (kind_ == kDouble) {
    const double d = double_;
    // %.15g prints what a person rounded to a few digits as those digits (0.0135, not
    // 0.013500000000000000); JSON has no NaN or infinity.
    if (std::isfinite(d))
      absl::StrAppend(out, absl::StrFormat("%.15g", d));
    else
      out->append("null");
  } else if (is_string()) {
    out->append(JsonQuote(as_string()));
  } else if (is_array()) {
    const Array &a = as_array();
    out->push_back('[');
    for (size_t i = 0; i < a.size(); ++i) {
      if (i) out->push_back(',');
      Newline(out, indent, depth + 1);
      a[i].DumpTo(out, indent, depth + 1);
    }
    if (!a.empty()) Newline(out, indent, depth);
    out->push_back(']');
  } else {
    const Object &o = as_object();
    out->push_back('{');
    for (size_t i = 0; i < o.size(); ++i) {
      if (i) out->push_back(',');
      Newline(out, indent, depth + 1);
      out->append(JsonQuote(o[i].first));
      out->append(indent > 0 ? ": " : ":");
      o[i].second.DumpTo(out, indent, depth + 1);
    }
    if (!o.empty()) Newline(out, indent, depth);
    out->push_back('}');
  }
}

absl::StatusOr<Json> ParseJson(absl::string_view text) { return Parser(text).ParseDocument(); }

std::string ValidUtf8(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  while (!text.empty()) {
    const size_t n = Utf8Length(text);
    if (n == 0) {
      out.append("\xEF\xBF\xBD");  // U+FFFD
      text.remove_prefix(1);
    } else {
      absl::StrAppend(&out, text.substr(0, n));
      text.remove_prefix(n);
    }
  }
  return out;
}

std::string JsonQuote(absl::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    switch (c) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\r':
        out.append("\\r");
        break;
      case '\t':
        out.append("\\t");
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20)
          absl::StrAppendFormat(&out, "\\u%04x", c);
        else
          out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

}  // namespace allocscope::cmd
