// libFuzzer target: ValidateName, ValidateJobSpec and SplitJob.
//
// Input: 4 bytes of slots (free_slots, then total_slots, each a little-endian
// uint16: fleets up to 16 workers of kMaxSlotsPerWorker), then the payload.
//  - The payload, as raw bytes, is a name for ValidateName: what it accepts
//    must be printable UTF-8 of at most kMaxNameBytes, and must parse as a
//    proto3 string (protobuf's own UTF-8 check is the reference).
//  - The payload, parsed as a v1::JobSpec, goes to ValidateJobSpec and
//    SplitJob. SplitJob validates first, so for any spec it must return an
//    error or a split within the limits of limits.h.
// Anything else (a crash, a sanitizer report, a broken invariant) aborts.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "busyfleet/v1/types.pb.h"
#include "coordinator/core/job_splitter.h"
#include "coordinator/core/limits.h"
#include "google/protobuf/stubs/logging.h"

namespace busyfleet::coordinator {
namespace {

constexpr size_t kSlotBytes = 4;

// Prints what broke and aborts, so libFuzzer saves the input.
void Fail(const char* what, const v1::JobSpec& spec, int free_slots, int total_slots) {
  std::fprintf(stderr, "spec_fuzzer: %s (free_slots=%d total_slots=%d)\nspec: %s\n", what,
               free_slots, total_slots, spec.ShortDebugString().c_str());
  std::abort();
}

#define FUZZ_CHECK(cond)                                                    \
  do {                                                                      \
    if (!(cond)) Fail("check failed: " #cond, spec, free_slots, total_slots); \
  } while (false)

// Aborts with the name's bytes in hex.
void FailName(const char* what, absl::string_view name) {
  std::fprintf(stderr, "spec_fuzzer: ValidateName: %s; name (%zu bytes):", what, name.size());
  for (const char c : name) std::fprintf(stderr, " %02x", static_cast<unsigned char>(c));
  std::fprintf(stderr, "\n");
  std::abort();
}

void CheckName(absl::string_view name) {
  const absl::Status may_be_empty = ValidateName("name", name, /*allow_empty=*/true);
  const absl::Status not_empty = ValidateName("name", name, /*allow_empty=*/false);
  if (name.empty()) {
    if (!may_be_empty.ok() || not_empty.code() != absl::StatusCode::kInvalidArgument) {
      FailName("empty name: allow_empty not honoured", name);
    }
    return;
  }
  if (may_be_empty.ok() != not_empty.ok()) FailName("allow_empty changed a non-empty name's result", name);
  if (!may_be_empty.ok()) {
    if (may_be_empty.code() != absl::StatusCode::kInvalidArgument) FailName("not InvalidArgument", name);
    return;
  }
  if (name.size() > limits::kMaxNameBytes) FailName("accepted a name over kMaxNameBytes", name);
  for (size_t i = 0; i < name.size(); ++i) {
    const auto c = static_cast<unsigned char>(name[i]);
    if (c < 0x20 || c == 0x7F) FailName("accepted a C0 control or DEL", name);
    // U+0080..U+009F are C2 80..C2 9F in UTF-8.
    if (c == 0xC2 && i + 1 < name.size() && static_cast<unsigned char>(name[i + 1]) <= 0x9F) {
      FailName("accepted a C1 control", name);
    }
  }
  // The name as field 1 (string) of a JobSpec: proto3 parsing checks UTF-8.
  std::string wire = "\x0a";  // field 1, length-delimited
  for (size_t n = name.size();; n >>= 7) {  // the length, as a varint
    wire.push_back(static_cast<char>((n & 0x7F) | (n > 0x7F ? 0x80 : 0)));
    if (n <= 0x7F) break;
  }
  wire.append(name.data(), name.size());
  v1::JobSpec probe;
  if (!probe.ParseFromString(wire) || probe.name() != name) {
    FailName("accepted a name that is not valid UTF-8 for protobuf", name);
  }
}

void CheckSplit(const v1::JobSpec& spec, int free_slots, int total_slots) {
  const absl::Status valid = ValidateJobSpec(spec);
  const absl::StatusOr<std::vector<TaskSpec>> split = SplitJob(spec, free_slots, total_slots);
  if (!valid.ok()) {
    // SplitJob validates first: a spec ValidateJobSpec refuses is refused.
    FUZZ_CHECK(!split.ok());
    FUZZ_CHECK(split.status() == valid);
    return;
  }
  if (!split.ok()) {
    // A valid spec is refused only with tasks auto: FailedPrecondition with
    // no slots, InvalidArgument when `total` over the slots found makes tasks
    // larger than kMaxIterationsPerTask (not known before the split).
    FUZZ_CHECK(spec.tasks_auto());
    if (split.status().code() == absl::StatusCode::kFailedPrecondition) {
      FUZZ_CHECK(free_slots <= 0 && total_slots <= 0);
    } else {
      FUZZ_CHECK(split.status().code() == absl::StatusCode::kInvalidArgument);
      FUZZ_CHECK(KindTakesIterations(spec.kind()) && spec.total() != 0);
    }
    return;
  }
  const std::vector<TaskSpec>& tasks = *split;
  FUZZ_CHECK(!tasks.empty());
  FUZZ_CHECK(tasks.size() <= limits::kMaxTasksPerJob);
  if (!spec.tasks_auto()) {
    FUZZ_CHECK(tasks.size() == spec.tasks());
  } else {
    const int slots = free_slots > 0 ? free_slots : total_slots;
    FUZZ_CHECK(tasks.size() <= static_cast<size_t>(slots));
    if (spec.max_slots() != 0) FUZZ_CHECK(tasks.size() <= spec.max_slots());
    if (spec.total() != 0) FUZZ_CHECK(tasks.size() <= spec.total());
  }
  // Countdown and python tasks count iterations; spin and sleep run for a duration.
  const bool countdown = KindTakesIterations(spec.kind());
  const absl::Duration duration =
      countdown ? absl::ZeroDuration()
                : absl::Seconds(spec.duration().seconds()) + absl::Nanoseconds(spec.duration().nanos());
  if (!countdown) FUZZ_CHECK(duration <= limits::kMaxTaskDuration);
  uint64_t sum = 0;
  uint64_t smallest = UINT64_MAX;
  uint64_t largest = 0;
  for (size_t i = 0; i < tasks.size(); ++i) {
    const TaskSpec& t = tasks[i];
    FUZZ_CHECK(t.index == i);
    FUZZ_CHECK(t.iterations <= limits::kMaxIterationsPerTask);
    FUZZ_CHECK(t.duration == duration);
    if (!countdown) FUZZ_CHECK(t.iterations == 0);
    if (countdown && spec.total() == 0) FUZZ_CHECK(t.iterations == spec.iterations());
    // No overflow: at most 1e6 tasks of at most 1e13 iterations.
    sum += t.iterations;
    smallest = t.iterations < smallest ? t.iterations : smallest;
    largest = t.iterations > largest ? t.iterations : largest;
  }
  if (countdown && spec.total() != 0) {
    FUZZ_CHECK(sum == spec.total());
    FUZZ_CHECK(largest - smallest <= 1);
    FUZZ_CHECK(smallest >= 1);
  }
}

}  // namespace
}  // namespace busyfleet::coordinator

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Parsing rejects invalid UTF-8 in strings with an ERROR log line; quiet.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < busyfleet::coordinator::kSlotBytes) return 0;
  const int free_slots = data[0] | (data[1] << 8);
  const int total_slots = data[2] | (data[3] << 8);
  data += busyfleet::coordinator::kSlotBytes;
  size -= busyfleet::coordinator::kSlotBytes;
  busyfleet::coordinator::CheckName(
      absl::string_view(reinterpret_cast<const char*>(data), size));
  busyfleet::v1::JobSpec spec;
  if (!spec.ParseFromArray(data, static_cast<int>(size))) return 0;
  busyfleet::coordinator::CheckSplit(spec, free_slots, total_slots);
  return 0;
}
