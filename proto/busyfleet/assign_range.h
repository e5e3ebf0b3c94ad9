#ifndef BUSYFLEET_ASSIGN_RANGE_H_
#define BUSYFLEET_ASSIGN_RANGE_H_

// v1::AssignRange read as the Assignments it stands for (issue 17): both
// ends and the tests expand a range the same way.

#include <cstdint>

#include "busyfleet/v1/worker.pb.h"

namespace busyfleet {

// Sets `a` to the range's task `first_index + i` (every other field as the
// range has it; `a`'s own duration and timeout are cleared when the range
// has none). `i` must be below r.count().
void SetRangeTask(const v1::AssignRange& r, uint32_t i, v1::Assignment& a);

}  // namespace busyfleet

#endif  // BUSYFLEET_ASSIGN_RANGE_H_
