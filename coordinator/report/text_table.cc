#include "coordinator/report/text_table.h"

#include <algorithm>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "coordinator/report/format.h"

namespace busyfleet::report {

std::string RenderTextTable(const std::vector<TableColumn>& columns,
                            const std::vector<std::vector<std::string>>& rows) {
  // Header first, then the rows, every cell already printable.
  std::vector<std::vector<std::string>> cells;
  cells.reserve(rows.size() + 1);
  std::vector<std::string> header;
  for (const TableColumn& column : columns) header.push_back(column.header);
  cells.push_back(std::move(header));
  for (const auto& row : rows) {
    std::vector<std::string> line(columns.size());
    for (size_t c = 0; c < columns.size() && c < row.size(); ++c) {
      line[c] = Printable(row[c]);
    }
    cells.push_back(std::move(line));
  }

  std::vector<size_t> widths(columns.size(), 0);
  for (const auto& line : cells) {
    for (size_t c = 0; c < columns.size(); ++c) {
      widths[c] = std::max(widths[c], DisplayWidth(line[c]));
    }
  }

  std::string out;
  for (const auto& line : cells) {
    std::string text;
    for (size_t c = 0; c < columns.size(); ++c) {
      if (c > 0) text += "  ";
      const std::string pad(widths[c] - DisplayWidth(line[c]), ' ');
      if (columns[c].right) {
        absl::StrAppend(&text, pad, line[c]);
      } else {
        absl::StrAppend(&text, line[c], pad);
      }
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    absl::StrAppend(&out, text, "\n");
  }
  return out;
}

}  // namespace busyfleet::report
