#ifndef BUSYFLEET_COORDINATOR_REPORT_SVG_UTIL_H_
#define BUSYFLEET_COORDINATOR_REPORT_SVG_UTIL_H_

// Small helpers shared by the SVG charts (timeline.cc, scaling_chart.cc):
// escaping, axis ticks, coordinates. Text helpers (TruncateText,
// DisplayWidth) are in format.h. Pure functions: no I/O,
// thread-safe.

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace busyfleet::report {

// `text` made safe for XML character data and attribute values (either
// quote): & < > " ' become entities; bytes that are not valid UTF-8, and code
// points XML 1.0 forbids (control characters other than tab, newline and
// carriage return; U+FFFE, U+FFFF), become U+FFFD. The result is well-formed
// UTF-8 whatever the input.
std::string XmlEscape(absl::string_view text);

// An axis step of 1, 2 or 5 times a power of ten that cuts [0, span] into
// about `target` steps (at most `target`, when target >= 1). 1 when span is
// not a positive finite number or target < 1.
double NiceStep(double span, int target);

// A coordinate for an SVG attribute: one decimal, without a trailing ".0"
// ("12", "12.5", "-3"); "0" for non-finite values.
std::string SvgNum(double value);

// An axis tick label: `value` with as many decimals as `step` needs
// (step 0.25 -> "0.75", step 5 -> "15"); at most 6 decimals.
std::string TickLabel(double value, double step);

// The opening of a standalone SVG document of `width` x `height` pixels:
// `<svg xmlns="http://www.w3.org/2000/svg" width height viewBox
// font-family="sans-serif" font-size="12" role="img">` (no XML declaration,
// so it can be inlined in HTML) and a white background rect.
std::string SvgOpen(int width, double height);

// Elements, each without a trailing newline (callers put several on a line):
//   SvgLine:  <line x1=".." y1=".." x2=".." y2=".."ATTRIBUTES/>
//   SvgRect:  <rect x=".." y=".." width=".." height=".."ATTRIBUTES/>
//   SvgText:  <text x=".." y=".."ATTRIBUTES>XmlEscape(text)</text>
// Coordinates go through SvgNum; `attributes` is inserted as it is (start it
// with a space).
std::string SvgLine(double x1, double y1, double x2, double y2,
                    absl::string_view attributes);
std::string SvgRect(double x, double y, double width, double height,
                    absl::string_view attributes);
std::string SvgText(double x, double y, absl::string_view attributes,
                    absl::string_view text);

}  // namespace busyfleet::report

#endif  // BUSYFLEET_COORDINATOR_REPORT_SVG_UTIL_H_
