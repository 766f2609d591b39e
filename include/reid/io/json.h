#pragma once
/// @file
/// JSON values as text, for the JSON lines LibReID writes (metrics.jsonl) and its JSON objects
/// (EvalResult::to_json): strings escaped, numbers that JSON can hold.

#include <string>

namespace reid::io {

/// `text` as a JSON string literal, quotes included (quotes, backslashes and control characters
/// escaped; other bytes as they are, so UTF-8 text stays UTF-8).
std::string json_string(const std::string& text);

/// `value` as a JSON number with 6 significant digits, or null when it is NaN or infinite (JSON
/// has neither).
std::string json_number(double value);

}  // namespace reid::io
