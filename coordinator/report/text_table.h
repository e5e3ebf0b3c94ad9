#ifndef BUSYFLEET_COORDINATOR_REPORT_TEXT_TABLE_H_
#define BUSYFLEET_COORDINATOR_REPORT_TEXT_TABLE_H_

// Aligned plain-text tables: coordctl's reports, workers, jobs, compare and
// scaling tables all go through RenderTextTable. Pure: no I/O, thread-safe.

#include <string>
#include <vector>

namespace busyfleet::report {

struct TableColumn {
  std::string header;
  bool right = false;  // Numbers are right-aligned, text left-aligned.
};

// One line per row after a header line, each ending in '\n': cells separated
// by two spaces, each column as wide as its widest cell (DisplayWidth: one
// column per UTF-8 code point), no trailing blanks. Cells go through
// Printable: control characters print as '?' (free text from the wire goes
// to a terminal). A row with fewer cells than
// columns is padded with empty cells; extra cells are ignored.
std::string RenderTextTable(const std::vector<TableColumn>& columns,
                            const std::vector<std::vector<std::string>>& rows);

}  // namespace busyfleet::report

#endif  // BUSYFLEET_COORDINATOR_REPORT_TEXT_TABLE_H_
