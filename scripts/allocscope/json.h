// json.h: a JSON value, its parser and its writer: what the command needs to read the
// preload's record lines (record_format.h) and to write the sweep's report. Objects keep
// their keys in insertion order, so a report reads in the order it was built.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"

namespace allocscope::cmd {

class Json {
 public:
  using Array = std::vector<Json>;
  using Object = std::vector<std::pair<std::string, Json>>;

  Json() = default;  // null
  Json(std::nullptr_t) {}
  Json(bool b) : kind_(kBool), bool_(b) {}
  Json(int n) : kind_(kInt), int_(n) {}
  Json(int64_t n) : kind_(kInt), int_(n) {}
  Json(uint64_t n) : kind_(kInt), int_(static_cast<int64_t>(n)) {}
  Json(double d) : kind_(kDouble), double_(d) {}
  Json(const char *s) : kind_(kString), string_(s) {}
  Json(std::string s) : kind_(kString), string_(std::move(s)) {}
  Json(absl::string_view s) : kind_(kString), string_(s) {}
  Json(Array a) : kind_(kArray), array_(std::move(a)) {}
  Json(Object o) : kind_(kObject), object_(std::move(o)) {}

  template <typename T>
  static Json Optional(const std::optional<T> &v) {
    return v ? Json(*v) : Json();
  }

  bool is_null() const { return kind_ == kNull; }
  bool is_bool() const { return kind_ == kBool; }
  bool is_int() const { return kind_ == kInt; }
  bool is_string() const { return kind_ == kString; }
  bool is_array() const { return kind_ == kArray; }
  bool is_object() const { return kind_ == kObject; }

  // Each accessor is for values of its kind only.
  bool as_bool() const { return bool_; }
  int64_t as_int() const { return int_; }
  const std::string &as_string() const { return string_; }
  const Array &as_array() const { return array_; }
  const Object &as_object() const { return object_; }

  // The member `key` of an object, or nullptr (also when this is not an object).
  const Json *find(absl::string_view key) const;
  // Appends a member (objects) or an element (arrays).
  void set(std::string key, Json value) { object_.emplace_back(std::move(key), std::move(value)); }
  void push(Json value) { array_.push_back(std::move(value)); }

  // The text of this value; indent > 0 puts each member and element on a line of its own.
  std::string Dump(int indent = 0) const;

 private:
  void DumpTo(std::string *out, int indent, int depth) const;

  // One member per kind rather than a std::variant: GCC 12 warns, wrongly, that moving a
  // variant holding a number reads an uninitialised vector.
  enum Kind { kNull, kBool, kInt, kDouble, kString, kArray, kObject };
  Kind kind_ = kNull;
  bool bool_ = false;
  int64_t int_ = 0;
  double double_ = 0;
  std::string string_;
  Array array_;
  Object object_;
};

// Parses one JSON text (surrounding blanks allowed, nothing else after it).
absl::StatusOr<Json> ParseJson(absl::string_view text);

// `text` with every byte sequence that is not UTF-8 replaced by U+FFFD, so that any output
// of a program can go into a JSON string.
std::string ValidUtf8(absl::string_view text);

// A JSON string literal, quotes included.
std::string JsonQuote(absl::string_view text);

}  // namespace allocscope::cmd
