#include "worker/python_kernel.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>

#if BUSYFLEET_HAVE_PYTHON
// Python.h wants to come first of the system headers' macros it sets; it is
// included only here, so nothing else in the worker sees them.
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#endif

namespace busyfleet::worker {

#if BUSYFLEET_HAVE_PYTHON
namespace {

// The chapter's function, verbatim.
constexpr char kBusyWaitSource[] =
    "def busy_wait(n):\n"
    "    while n > 0:\n"
    "        n -= 1\n";

struct PythonState {
  // Written once, inside InitPythonKernel's call_once (which orders it
  // before the return of every call).
  absl::Status status = absl::FailedPreconditionError("the embedded Python is not started");
  PyObject* busy_wait = nullptr;  // a strong reference, never released
  // Set last, once the interpreter is ready: PythonKernelAvailable may be
  // asked from any thread, at any time.
  std::atomic<bool> available{false};
};

PythonState& State() {
  static PythonState* state = new PythonState;  // never destroyed: threads may still use it at exit
  return *state;
}

absl::Status StartInterpreter() {
  PyConfig config;
  PyConfig_InitIsolatedConfig(&config);
  config.install_signal_handlers = 0;  // the worker's signals stay the worker's
  config.site_import = 0;              // busy_wait needs no site packages
  const PyStatus started = Py_InitializeFromConfig(&config);
  PyConfig_Clear(&config);
  if (PyStatus_Exception(started)) {
    return absl::InternalError(std::string("cannot start the embedded Python: ") +
                               (started.err_msg != nullptr ? started.err_msg : "unknown error"));
  }
  return absl::OkStatus();
}

// Compiles kBusyWaitSource; the caller holds the GIL.
absl::Status CompileBusyWait(PythonState& state) {
  PyObject* globals = PyDict_New();
  if (globals == nullptr) return absl::InternalError("cannot compile busy_wait: out of memory");
  PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins());
  PyObject* ran = PyRun_String(kBusyWaitSource, Py_file_input, globals, globals);
  Py_XDECREF(ran);
  state.busy_wait = PyDict_GetItemString(globals, "busy_wait");  // borrowed
  Py_XINCREF(state.busy_wait);
  Py_DECREF(globals);
  if (state.busy_wait == nullptr) {
    PyErr_Clear();
    return absl::InternalError("cannot compile busy_wait in the embedded Python");
  }
  return absl::OkStatus();
}

// Calls busy_wait(n) once; false when it raised (only MemoryError can: the
// interpreter installs no signal handlers). The caller holds the GIL.
bool CallBusyWait(PyObject* busy_wait, uint64_t n) {
  PyObject* arg = PyLong_FromUnsignedLongLong(n);
  if (arg == nullptr) {
    PyErr_Clear();
    return false;
  }
  PyObject* result = PyObject_CallOneArg(busy_wait, arg);
  Py_DECREF(arg);
  if (result == nullptr) {
    PyErr_Clear();
    return false;
  }
  Py_DECREF(result);
  return true;
}

}  // namespace

absl::Status InitPythonKernel() {
  static std::once_flag once;
  std::call_once(once, [] {
    PythonState& state = State();
    state.status = StartInterpreter();
    if (!state.status.ok()) return;
    state.status = CompileBusyWait(state);
    // Hand the GIL back: from now on every thread that runs Python takes it
    // with PyGILState_Ensure. (The saved thread state is never restored.)
    PyEval_SaveThread();
    if (state.status.ok()) state.available.store(true, std::memory_order_release);
  });
  return State().status;
}

bool PythonKernelAvailable() { return State().available.load(std::memory_order_acquire); }

std::string PythonVersion() {
  if (!PythonKernelAvailable()) return "";
  const std::string full = Py_GetVersion();  // "3.11.2 (main, ...) [GCC ...]"
  return full.substr(0, full.find(' '));
}

KernelResult PythonCountdown(uint64_t n, const CancelToken& cancel, MonoTime deadline) {
  if (!PythonKernelAvailable()) return {KernelOutcome::kBadKind, 0};
  const bool has_deadline = deadline != MonoTime::InfiniteFuture();
  KernelResult out;
  const PyGILState_STATE gil = PyGILState_Ensure();
  while (out.iterations_done < n) {
    if (cancel.cancelled()) {
      out.outcome = KernelOutcome::kCancelled;
      break;
    }
    if (has_deadline && MonoNow() >= deadline) {
      out.outcome = KernelOutcome::kTimedOut;
      break;
    }
    const uint64_t chunk = std::min(n - out.iterations_done, kPythonChunk);
    // A MemoryError is reported as a bad kind: the task fails for good.
    if (!CallBusyWait(State().busy_wait, chunk)) {
      out.outcome = KernelOutcome::kBadKind;
      break;
    }
    out.iterations_done += chunk;
  }
  PyGILState_Release(gil);
  return out;
}

pid_t PythonFork() {
  if (!PythonKernelAvailable()) return fork();
  const PyGILState_STATE gil = PyGILState_Ensure();
  PyOS_BeforeFork();
  const pid_t pid = fork();
  if (pid == 0) {
    PyOS_AfterFork_Child();  // this thread is now the main thread, holding the GIL
    return 0;
  }
  PyOS_AfterFork_Parent();
  PyGILState_Release(gil);
  return pid;
}

#else  // !BUSYFLEET_HAVE_PYTHON

absl::Status InitPythonKernel() {
  return absl::UnimplementedError("this worker was built without Python (BUSYFLEET_PYTHON=OFF)");
}
bool PythonKernelAvailable() { return false; }
std::string PythonVersion() { return ""; }
KernelResult PythonCountdown(uint64_t, const CancelToken&, MonoTime) { return {KernelOutcome::kBadKind, 0}; }
pid_t PythonFork() { return fork(); }

#endif  // BUSYFLEET_HAVE_PYTHON

}  // namespace busyfleet::worker
