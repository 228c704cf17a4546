#include "engine/common/strings.h"

#include <gtest/gtest.h>

#include <string>

namespace cnnserve {
namespace {

TEST(EscapedTest, EscapesLikeQuotedWithoutTheQuotes) {
  EXPECT_EQ(Escaped("Conv"), "Conv");
  EXPECT_EQ(Escaped("a\"b\\c\n"), "a\\\"b\\\\c\\x0a");
  EXPECT_EQ(Escaped(std::string(70, 'z')), std::string(64, 'z') + "... (70 bytes)");
  EXPECT_EQ(Escaped("abcdef", 3), "abc... (6 bytes)");
}

TEST(QuotedTest, PlainTextInDoubleQuotes) {
  EXPECT_EQ(Quoted("alexnet"), "\"alexnet\"");
  EXPECT_EQ(Quoted(""), "\"\"");
}

TEST(QuotedTest, EscapesQuotesBackslashesAndControlBytes) {
  EXPECT_EQ(Quoted("a\"b"), "\"a\\\"b\"");
  EXPECT_EQ(Quoted("a\\b"), "\"a\\\\b\"");
  EXPECT_EQ(Quoted("a\nb\tc"), "\"a\\x0ab\\x09c\"");
  EXPECT_EQ(Quoted(std::string("x\0y", 3)), "\"x\\x00y\"");
  EXPECT_EQ(Quoted("\x7f"), "\"\\x7f\"");
  EXPECT_EQ(Quoted("caf\xc3\xa9"), "\"caf\xc3\xa9\"");  // UTF-8 is copied
}

TEST(QuotedTest, CutsLongTextAndSaysHowLongItWas) {
  EXPECT_EQ(Quoted(std::string(kDefaultQuotedMaxBytes, 'z')),
            "\"" + std::string(kDefaultQuotedMaxBytes, 'z') + "\"");
  EXPECT_EQ(Quoted(std::string(70, 'z')), "\"" + std::string(kDefaultQuotedMaxBytes, 'z') + "\"... (70 bytes)");
  EXPECT_EQ(Quoted("abcdef", 3), "\"abc\"... (6 bytes)");
  // The bound is on the bytes of the text, not on its escaped form: one message line stays bounded.
  const std::string quoted = Quoted(std::string(100000, '\n'));
  EXPECT_EQ(
      quoted, "\"" + [] {
        std::string s;
        for (size_t i = 0; i < kDefaultQuotedMaxBytes; ++i) s += "\\x0a";
        return s;
      }() + "\"... (100000 bytes)");
}

}  // namespace
}  // namespace cnnserve
