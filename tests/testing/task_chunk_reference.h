// The SQLite store's task chunk as docs/design.md states it, built through
// the generated code (tests of coordinator/store/task_chunk.h, and of files
// that older versions wrote).
#ifndef BUSYFLEET_TESTS_TESTING_TASK_CHUNK_REFERENCE_H_
#define BUSYFLEET_TESTS_TESTING_TASK_CHUNK_REFERENCE_H_

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "busyfleet/store/v1/task_chunk.pb.h"
#include "coordinator/core/job_model.h"

namespace busyfleet::coordinator {

// The format as docs/design.md states it, built through the generated
// code: what the writer's own encoding must match byte for byte (coding 1),
// or what schema versions 2 and 3 wrote (coding 0, from_base).
inline std::string ReferenceChunk(const TaskTable& rows, bool from_base = false) {
  store::v1::TaskChunk c;
  if (!from_base) c.set_coding(1);
  std::vector<uint32_t> ids;  // Name ids in order of first use
  auto number = [&](Name n) -> uint32_t {
    if (n.empty()) return 0;
    for (size_t k = 0; k < ids.size(); ++k) {
      if (ids[k] == n.id()) return static_cast<uint32_t>(k + 1);
    }
    ids.push_back(n.id());
    c.add_names(n.str());
    return static_cast<uint32_t>(ids.size());
  };
  for (const TaskRecord& t : rows.empty() ? TaskTable{} : TaskTable{rows[0]}) {
    for (WallNs w : {t.current.assigned_at, t.current.started_at, t.current.ended_at, t.current.result_at}) {
      if (w.is_set()) {
        c.set_base_ns(w.unix_ns());
        break;
      }
    }
  }
  int64_t chains[3] = {c.base_ns(), c.base_ns(), c.base_ns()};  // assigned, ended, result
  uint32_t last = 0;
  for (size_t r = 0; r < rows.size(); ++r) {
    const TaskRecord& t = rows[r];
    c.add_index_delta(r == 0 ? int64_t{t.index} : int64_t{t.index} - int64_t{last});
    last = t.index;
    c.add_state(static_cast<uint32_t>(static_cast<v1::TaskState>(t.state)));
    c.add_attempt(t.current.number);
    c.add_slot(t.current.slot);
    c.add_worker(number(t.current.worker));
    c.add_host(number(t.current.host));
    c.add_bound_cpus(number(t.current.bound_cpus));
    uint32_t bits = 0;
    const WallNs times[] = {t.current.assigned_at, t.current.started_at, t.current.ended_at, t.current.result_at};
    int64_t deltas[4];
    // Coding 1: started and ended share the chain of ends.
    int64_t* chain_of[4] = {&chains[0], &chains[1], &chains[1], &chains[2]};
    for (int k = 0; k < 4; ++k) {
      if (!times[k].is_set()) bits |= 1u << k;
      const int64_t from = from_base ? c.base_ns() : *chain_of[k];
      deltas[k] = times[k].is_set() ? times[k].unix_ns() - from : 0;
      if (times[k].is_set()) *chain_of[k] = times[k].unix_ns();
    }
    c.add_assigned_ns(deltas[0]);
    c.add_started_ns(deltas[1]);
    c.add_ended_ns(deltas[2]);
    c.add_result_ns(deltas[3]);
    if (t.speculated) bits |= 1u << 4;
    if (t.backup_won) bits |= 1u << 5;
    if (t.current.migrated) bits |= 1u << 6;
    c.add_bits(bits);
    c.add_cpu_ns(t.current.cpu_ns);
    c.add_iterations_done(t.current.iterations_done);
    c.add_start_cpu(t.current.start_cpu);
    c.add_end_cpu(t.current.end_cpu);
    if (from_base) {
      c.add_calibrated_rate(t.current.calibrated_rate);
    } else if (t.current.calibrated_rate == 0) {
      c.add_rate(0);
    } else {
      auto known = std::find(c.rates().begin(), c.rates().end(), double{t.current.calibrated_rate});
      if (known == c.rates().end()) {
        c.add_rates(t.current.calibrated_rate);
        c.add_rate(static_cast<uint32_t>(c.rates_size()));
      } else {
        c.add_rate(static_cast<uint32_t>(known - c.rates().begin() + 1));
      }
    }
    if (!t.error().empty() || !t.failures().empty() || t.interference()) {
      store::v1::TaskChunk::Text& text = *c.add_text();
      text.set_row(static_cast<uint32_t>(r));
      text.set_error(t.error());
      text.set_failures(absl::StrJoin(t.failures(), "\n"));
      if (t.interference()) text.set_interference(t.interference()->SerializeAsString());
    }
  }
  return c.SerializeAsString();
}

}  // namespace busyfleet::coordinator

#endif  // BUSYFLEET_TESTS_TESTING_TASK_CHUNK_REFERENCE_H_
