#ifndef BUSYFLEET_WORKER_PYTHON_KERNEL_H_
#define BUSYFLEET_WORKER_PYTHON_KERNEL_H_

// The python task kind (TASK_KIND_PYTHON): the chapter's loop
//
//   def busy_wait(n):
//       while n > 0:
//           n -= 1
//
// run by an embedded CPython, one interpreter per worker process. The
// source is fixed here; no code comes over the wire. Threads that run it
// share the interpreter's GIL, exactly like the chapter's threading example.
//
// Built without Python (-DBUSYFLEET_PYTHON=OFF, or no libpython3-dev), every
// function here is a stub: InitPythonKernel fails, PythonKernelAvailable is
// false, PythonCountdown returns kBadKind.

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "common/clock.h"
#include "common/kernels.h"

namespace busyfleet::worker {

// Starts the interpreter once (isolated: no environment, no site, no
// signal handlers; Python never handles the worker's signals) and compiles
// busy_wait; the calling thread then releases the GIL. Later calls return
// the first call's status. Never finalised: the interpreter lives as long
// as the process.
absl::Status InitPythonKernel();

// True once InitPythonKernel has succeeded.
bool PythonKernelAvailable();

// The embedded CPython's version, "3.11.2"; "" when not available.
std::string PythonVersion();

// How many iterations one call of busy_wait runs: PythonCountdown checks
// its cancel token and deadline between calls. About 1-2 ms of Python
// (30-70 M iterations/s); the extra call per chunk costs well under 0.1%.
inline constexpr uint64_t kPythonChunk = uint64_t{1} << 16;

// busy_wait(n) in the embedded interpreter, on the calling thread (which
// takes the GIL for the whole call; the interpreter hands it to other
// Python threads every switch interval, 5 ms, as in the chapter). Runs in
// chunks of kPythonChunk and stops between two of them when `cancel` fires
// or `deadline` passes: a stop takes one chunk plus, while other threads
// hold the GIL, the wait for it. iterations_done is exact (whole chunks).
// kBadKind when the interpreter is not available.
KernelResult PythonCountdown(uint64_t n, const CancelToken& cancel,
                             MonoTime deadline = MonoTime::InfiniteFuture());

// fork() for a process-mode python task, following CPython's protocol (the
// one os.fork() uses): take the GIL, PyOS_BeforeFork, fork, then
// PyOS_AfterFork_Child in the child (which keeps the GIL, the interpreter's
// only thread) and PyOS_AfterFork_Parent + release in the parent. Without
// it a child forked while another slot thread holds the GIL would wait for
// it forever. Plain fork() when the interpreter is not available. Returns
// like fork().
pid_t PythonFork();

}  // namespace busyfleet::worker

#endif  // BUSYFLEET_WORKER_PYTHON_KERNEL_H_
