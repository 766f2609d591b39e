#pragma once
/// @file
/// The protobuf wire format, written by hand (LibReID writes TensorBoard event files and ONNX
/// models without depending on Protobuf): a message is a string of fields, each a key
/// (field number << 3 | wire type) and a value. Little-endian hosts only (as LibTorch is).

#include <cstdint>
#include <string>
#include <string_view>

namespace reid::io {

/// Builds one message's bytes; nested messages are built separately and added with message().
class ProtoWriter {
 public:
  /// Wire type 0: int32 / int64 / uint64 / bool / enum.
  ProtoWriter& varint(int field, uint64_t value) {
    key(field, 0);
    raw_varint(value);
    return *this;
  }
  /// Wire type 1: double.
  ProtoWriter& fixed64(int field, double value) {
    key(field, 1);
    bytes_.append(reinterpret_cast<const char*>(&value), 8);
    return *this;
  }
  /// Wire type 5: float.
  ProtoWriter& fixed32(int field, float value) {
    key(field, 5);
    bytes_.append(reinterpret_cast<const char*>(&value), 4);
    return *this;
  }
  /// Wire type 2: string / bytes.
  ProtoWriter& bytes(int field, std::string_view value) {
    key(field, 2);
    raw_varint(value.size());
    bytes_.append(value.data(), value.size());
    return *this;
  }
  /// Wire type 2: an embedded message.
  ProtoWriter& message(int field, const ProtoWriter& value) { return bytes(field, value.str()); }
  const std::string& str() const { return bytes_; }

 private:
  void key(int field, int wire) { raw_varint((static_cast<uint64_t>(field) << 3) | static_cast<uint64_t>(wire)); }
  void raw_varint(uint64_t v) {
    while (v >= 0x80) {
      bytes_ += static_cast<char>((v & 0x7F) | 0x80);
      v >>= 7;
    }
    bytes_ += static_cast<char>(v);
  }
  std::string bytes_;
};

}  // namespace reid::io
