#include "coordinator/report/svg_util.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace busyfleet::report {
namespace {

constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD

bool IsXmlChar(uint32_t cp) {
  if (cp < 0x20) return cp == 0x09 || cp == 0x0A || cp == 0x0D;
  if (cp >= 0xD800 && cp <= 0xDFFF) return false;
  return cp != 0xFFFE && cp != 0xFFFF && cp <= 0x10FFFF;
}

// Decodes the UTF-8 sequence at text[i]; returns its length, 0 when invalid
// (truncated, overlong, a surrogate, above U+10FFFF).
size_t DecodeUtf8(absl::string_view text, size_t i, uint32_t* cp) {
  const unsigned char lead = static_cast<unsigned char>(text[i]);
  if (lead < 0x80) {
    *cp = lead;
    return 1;
  }
  size_t length;
  uint32_t min;
  if ((lead & 0xE0) == 0xC0) {
    length = 2;
    min = 0x80;
    *cp = lead & 0x1F;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3;
    min = 0x800;
    *cp = lead & 0x0F;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4;
    min = 0x10000;
    *cp = lead & 0x07;
  } else {
    return 0;
  }
  if (i + length > text.size()) return 0;
  for (size_t k = 1; k < length; ++k) {
    const unsigned char c = static_cast<unsigned char>(text[i + k]);
    if ((c & 0xC0) != 0x80) return 0;
    *cp = (*cp << 6) | (c & 0x3F);
  }
  if (*cp < min || *cp > 0x10FFFF || (*cp >= 0xD800 && *cp <= 0xDFFF)) {
    return 0;
  }
  return length;
}

}  // namespace

std::string XmlEscape(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    uint32_t cp = 0;
    const size_t length = DecodeUtf8(text, i, &cp);
    if (length == 0) {
      out += kReplacement;
      ++i;
      continue;
    }
    if (!IsXmlChar(cp)) {
      out += kReplacement;
    } else if (cp == '&') {
      out += "&amp;";
    } else if (cp == '<') {
      out += "&lt;";
    } else if (cp == '>') {
      out += "&gt;";
    } else if (cp == '"') {
      out += "&quot;";
    } else if (cp == '\'') {
      out += "&apos;";
    } else {
      out.append(text.data() + i, length);
    }
    i += length;
  }
  return out;
}

double NiceStep(double span, int target) {
  if (!std::isfinite(span) || span <= 0 || target < 1) return 1;
  const double raw = span / target;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double normalized = raw / magnitude;
  double nice = 10;
  if (normalized <= 1) {
    nice = 1;
  } else if (normalized <= 2) {
    nice = 2;
  } else if (normalized <= 5) {
    nice = 5;
  }
  return nice * magnitude;
}

std::string SvgNum(double value) {
  if (!std::isfinite(value)) return "0";
  std::string out = absl::StrFormat("%.1f", value);
  if (out.size() >= 2 && out.compare(out.size() - 2, 2, ".0") == 0) {
    out.resize(out.size() - 2);
  }
  if (out == "-0") out = "0";
  return out;
}

std::string TickLabel(double value, double step) {
  int decimals = 0;
  if (std::isfinite(step) && step > 0 && step < 1) {
    decimals =
        std::clamp(static_cast<int>(std::ceil(-std::log10(step) - 1e-9)), 0, 6);
    // Steps like 0.25 need one more digit than their magnitude says.
    const double scaled = step * std::pow(10.0, decimals);
    if (std::fabs(scaled - std::round(scaled)) > 1e-6 && decimals < 6) {
      ++decimals;
    }
  }
  std::string out = absl::StrFormat("%.*f", decimals, value);
  if (out == "-0" || (out.size() > 1 && out[0] == '-' &&
                      out.find_first_not_of("-0.") == std::string::npos)) {
    out.erase(0, 1);
  }
  return out;
}

std::string SvgOpen(int width, double height) {
  return absl::StrCat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"", width,
      "\" height=\"", SvgNum(height), "\" viewBox=\"0 0 ", width, " ",
      SvgNum(height),
      "\" font-family=\"sans-serif\" font-size=\"12\" role=\"img\">\n",
      "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n");
}

std::string SvgLine(double x1, double y1, double x2, double y2,
                    absl::string_view attributes) {
  return absl::StrCat("<line x1=\"", SvgNum(x1), "\" y1=\"", SvgNum(y1),
                      "\" x2=\"", SvgNum(x2), "\" y2=\"", SvgNum(y2), "\"",
                      attributes, "/>");
}

std::string SvgRect(double x, double y, double width, double height,
                    absl::string_view attributes) {
  return absl::StrCat("<rect x=\"", SvgNum(x), "\" y=\"", SvgNum(y),
                      "\" width=\"", SvgNum(width), "\" height=\"",
                      SvgNum(height), "\"", attributes, "/>");
}

std::string SvgText(double x, double y, absl::string_view attributes,
                    absl::string_view text) {
  return absl::StrCat("<text x=\"", SvgNum(x), "\" y=\"", SvgNum(y), "\"",
                      attributes, ">", XmlEscape(text), "</text>");
}

}  // namespace busyfleet::report
