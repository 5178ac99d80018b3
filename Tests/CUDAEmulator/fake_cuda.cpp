// A stand-in for the NVIDIA driver (libcuda.so.1) on machines without a GPU: the subset of the
// driver API that NanoCUDA calls, with "device" memory in host memory and kernels run by the CPU
// emulator (cuda_emu.h). The tests point NANODECODER_CUDA_PATH at a folder holding this library,
// the fake cuBLASLt and the kernel units built by build_kernels.py (NANODECODER_EMU_KERNELS), so
// the real CUDABackend Swift code runs end to end: argument packing, grids, streams, graphs.
//
// Semantics: work runs when it is enqueued (every stream is in order with every other), except on
// a stream that is capturing a graph, where it is recorded and runs on cuGraphLaunch. Fresh device
// memory is filled with 0xFF bytes (NaN as float) so kernels that read what nobody wrote show it.
//
// Cross-stream capture, as the real driver does it: an event remembers the stream it was recorded
// on, that stream's capture (if any) and how far the capture's streams had got (each stream counts
// the work enqueued on it: its "epoch"). A stream that is not capturing and waits on an event of a
// capture joins it (its work is recorded into the same graph, in enqueue order); waiting on a
// capture's event from the legacy stream is CUDA_ERROR_STREAM_CAPTURE_ISOLATION, from a stream
// capturing another graph CUDA_ERROR_STREAM_CAPTURE_MERGE. cuStreamEndCapture on the origin stream
// ends the capture for every stream that joined it, and fails with
// CUDA_ERROR_STREAM_CAPTURE_UNJOINED (discarding the graph) when one of them enqueued work that the
// origin never waited for (through events, directly or through other streams of the capture).
//
// Build: clang++ -std=c++17 -O2 -fPIC -shared fake_cuda.cpp -o OUT/libcuda.so.1 -Wl,-soname,libcuda.so.1 -ldl
#include <dirent.h>
#include <dlfcn.h>
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

typedef int CUresult;
typedef unsigned long long CUdeviceptr;
typedef struct { unsigned x, y, z; } nd_dim3;
typedef void (*nd_emu_launch_fn)(void **params, nd_dim3 grid, nd_dim3 block, unsigned shared_bytes);
typedef struct { const char *name; nd_emu_launch_fn launch; } nd_emu_kernel;
typedef struct { unsigned count; unsigned sizes[32]; } nd_emu_kernel_args;

enum {
    CUDA_SUCCESS = 0, CUDA_ERROR_INVALID_VALUE = 1, CUDA_ERROR_OUT_OF_MEMORY = 2, CUDA_ERROR_NOT_INITIALIZED = 3,
    CUDA_ERROR_INVALID_DEVICE = 101, CUDA_ERROR_INVALID_IMAGE = 200, CUDA_ERROR_INVALID_HANDLE = 400,
    CUDA_ERROR_NOT_FOUND = 500, CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED = 900, CUDA_ERROR_STREAM_CAPTURE_INVALIDATED = 901,
    CUDA_ERROR_STREAM_CAPTURE_MERGE = 902, CUDA_ERROR_STREAM_CAPTURE_UNMATCHED = 903, CUDA_ERROR_STREAM_CAPTURE_UNJOINED = 904,
    CUDA_ERROR_STREAM_CAPTURE_ISOLATION = 905, CUDA_ERROR_ILLEGAL_STATE = 401,
};

namespace {

using Work = std::function<void()>;

struct Graph { std::vector<std::shared_ptr<Work>> nodes; };
struct GraphExec { std::vector<std::shared_ptr<Work>> nodes; };
struct Stream;
/// For each stream of a capture, how much of its work (an epoch) something is ordered after.
using Reach = std::map<Stream *, uint64_t>;
struct Stream {
    Graph *capture = nullptr;   // the graph this stream's work goes into: its own capture, or one it joined
    uint64_t captureId = 0;     // which capture (ids are never reused; 0: none)
    bool origin = false;        // began the capture (only it can end it)
    uint64_t epoch = 0;         // pieces of work enqueued on this stream so far
    uint64_t joinedAt = 0;      // a stream that joined a capture: its epoch when it joined
    Reach reach;                // while capturing: the work of the capture this stream's next work is ordered after
};
/// What cuEventRecord saw: the stream (nullptr: the legacy stream), its capture, and its reach.
struct Event { Stream *stream = nullptr; uint64_t captureId = 0; Reach reach; };

struct Unit {
    std::string path;
    const nd_emu_kernel *kernels = nullptr;
    const nd_emu_kernel_args *args = nullptr;
    int count = 0;
};
struct Function { std::string name; nd_emu_launch_fn launch; const nd_emu_kernel_args *args; };
struct Module { Unit *unit; };

std::mutex lock;
bool initialised = false;
std::vector<Unit> units;
bool unitsLoaded = false;
std::map<CUdeviceptr, size_t> allocations;
std::map<void *, size_t> pinned;
int dummyContext = 0;
std::set<Stream *> streams;        // live streams (cuStreamCreate .. cuStreamDestroy)
uint64_t nextCaptureId = 1;
const char *failure = nullptr;   // why the last launch could not run (printed)

void loadUnits() {
    if (unitsLoaded) return;
    unitsLoaded = true;
    const char *dir = getenv("NANODECODER_EMU_KERNELS");
    if (!dir) { fprintf(stderr, "fake libcuda: NANODECODER_EMU_KERNELS is not set (folder of emulated kernel units)\n"); return; }
    DIR *d = opendir(dir);
    if (!d) { fprintf(stderr, "fake libcuda: cannot open %s\n", dir); return; }
    while (dirent *e = readdir(d)) {
        std::string name = e->d_name;
        if (name.size() < 4 || name.substr(name.size() - 3) != ".so") continue;
        std::string path = std::string(dir) + "/" + name;
        void *h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!h) { fprintf(stderr, "fake libcuda: %s\n", dlerror()); continue; }
        Unit u;
        u.path = path;
        u.kernels = (const nd_emu_kernel *)dlsym(h, "nd_emu_kernels");
        u.args = (const nd_emu_kernel_args *)dlsym(h, "nd_emu_kernel_args");
        int *count = (int *)dlsym(h, "nd_emu_kernel_count");
        if (!u.kernels || !count) { fprintf(stderr, "fake libcuda: %s has no kernel table\n", path.c_str()); continue; }
        u.count = *count;
        units.push_back(u);
    }
    closedir(d);
}

bool contains(const void *image, size_t n, const char *name) {
    return memmem(image, n, name, strlen(name) + 1) != nullptr;   // with its NUL: whole symbol names only
}

/// Counts a piece of work enqueued on `stream`.
void advance(void *stream) { if (stream) ((Stream *)stream)->epoch++; }

/// Runs `work` now, or records it when `stream` is capturing a graph.
void enqueue(void *stream, Work work) {
    advance(stream);
    Stream *s = (Stream *)stream;
    if (s && s->capture) { s->capture->nodes.push_back(std::make_shared<Work>(std::move(work))); return; }
    work();
}

/// Whether capture `id` is still going on (some stream records into it).
bool captureAlive(uint64_t id) {
    if (id == 0) return false;
    for (Stream *s : streams) if (s->captureId == id) return true;
    return false;
}

/// `into` is now ordered after everything `from` is.
void merge(Reach &into, const Reach &from) {
    for (auto &r : from) if (into[r.first] < r.second) into[r.first] = r.second;
}

} // namespace

extern "C" {

/// For the fake cuBLASLt: runs `run(ctx)` in stream order (now, or at each replay of a graph
/// being captured); `release(ctx)` when it can no longer run.
void nd_emu_enqueue(void *stream, void (*run)(void *), void *ctx, void (*release)(void *)) {
    auto holder = std::shared_ptr<void>(ctx, [release](void *p) { if (release) release(p); });
    enqueue(stream, [run, holder] { run(holder.get()); });
}

CUresult cuInit(unsigned) { initialised = true; return CUDA_SUCCESS; }
/// NVRTC looks for the driver's private export tables when libcuda is loaded: there are none.
CUresult cuGetExportTable(const void **table, const void *) { if (table) *table = nullptr; return CUDA_ERROR_NOT_FOUND; }
CUresult cuDriverGetVersion(int *v) { *v = 13000; return CUDA_SUCCESS; }
CUresult cuDeviceGetCount(int *n) { *n = 1; return CUDA_SUCCESS; }
CUresult cuDeviceGet(int *d, int ordinal) { if (ordinal != 0) return CUDA_ERROR_INVALID_DEVICE; *d = 0; return CUDA_SUCCESS; }
CUresult cuDeviceGetName(char *name, int len, int) { snprintf(name, len, "Emulated GPU (CPU)"); return CUDA_SUCCESS; }
CUresult cuDeviceGetAttribute(int *v, int attribute, int) {
    switch (attribute) {
    case 75: *v = 9; break;     // compute capability 9.0: the kernels are compiled for sm_90
    case 76: *v = 0; break;
    case 16: *v = 132; break;   // multiprocessors
    default: *v = 0;
    }
    return CUDA_SUCCESS;
}
CUresult cuGetErrorName(CUresult code, const char **name) {
    switch (code) {
    case CUDA_SUCCESS: *name = "CUDA_SUCCESS"; break;
    case CUDA_ERROR_INVALID_VALUE: *name = "CUDA_ERROR_INVALID_VALUE"; break;
    case CUDA_ERROR_OUT_OF_MEMORY: *name = "CUDA_ERROR_OUT_OF_MEMORY"; break;
    case CUDA_ERROR_INVALID_IMAGE: *name = "CUDA_ERROR_INVALID_IMAGE (fake libcuda: no emulated unit has these kernels)"; break;
    case CUDA_ERROR_NOT_FOUND: *name = "CUDA_ERROR_NOT_FOUND"; break;
    case CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED: *name = "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED"; break;
    case CUDA_ERROR_STREAM_CAPTURE_INVALIDATED: *name = "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED"; break;
    case CUDA_ERROR_STREAM_CAPTURE_MERGE: *name = "CUDA_ERROR_STREAM_CAPTURE_MERGE"; break;
    case CUDA_ERROR_STREAM_CAPTURE_UNMATCHED: *name = "CUDA_ERROR_STREAM_CAPTURE_UNMATCHED"; break;
    case CUDA_ERROR_STREAM_CAPTURE_UNJOINED: *name = "CUDA_ERROR_STREAM_CAPTURE_UNJOINED"; break;
    case CUDA_ERROR_STREAM_CAPTURE_ISOLATION: *name = "CUDA_ERROR_STREAM_CAPTURE_ISOLATION"; break;
    case CUDA_ERROR_ILLEGAL_STATE: *name = "CUDA_ERROR_ILLEGAL_STATE"; break;
    default: *name = "CUDA_ERROR_UNKNOWN";
    }
    return CUDA_SUCCESS;
}

CUresult cuDevicePrimaryCtxRetain(void **ctx, int) { *ctx = &dummyContext; return CUDA_SUCCESS; }
CUresult cuCtxSetCurrent(void *) { return CUDA_SUCCESS; }
CUresult cuCtxGetCurrent(void **ctx) { *ctx = &dummyContext; return CUDA_SUCCESS; }
CUresult cuCtxSynchronize() { return CUDA_SUCCESS; }

/// Device memory in use, and the limit NANODECODER_EMU_MEMORY_MB sets (default: none), so tests can
/// run the out-of-memory paths.
static size_t allocatedBytes = 0;
static size_t memoryLimit() {
    static size_t limit = [] { const char *v = getenv("NANODECODER_EMU_MEMORY_MB"); return v ? (size_t)atoll(v) << 20 : (size_t)-1; }();
    return limit;
}

CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t bytes) {
    {
        std::lock_guard<std::mutex> g(lock);
        if (allocatedBytes + bytes > memoryLimit()) return CUDA_ERROR_OUT_OF_MEMORY;
    }
    void *m = aligned_alloc(256, (bytes + 255) / 256 * 256);
    if (!m) return CUDA_ERROR_OUT_OF_MEMORY;
    memset(m, 0xFF, bytes);
    std::lock_guard<std::mutex> g(lock);
    allocatedBytes += bytes;
    allocations[(CUdeviceptr)m] = bytes;
    *p = (CUdeviceptr)m;
    return CUDA_SUCCESS;
}
CUresult cuMemFree_v2(CUdeviceptr p) {
    std::lock_guard<std::mutex> g(lock);
    auto it = allocations.find(p);
    if (it == allocations.end()) return CUDA_ERROR_INVALID_VALUE;
    allocatedBytes -= it->second;
    allocations.erase(it);
    free((void *)p);
    return CUDA_SUCCESS;
}
CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t n) { memcpy((void *)dst, src, n); return CUDA_SUCCESS; }
CUresult cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t n) { memcpy(dst, (const void *)src, n); return CUDA_SUCCESS; }
/// Page-locked host memory: ordinary memory here, tracked so freeing a wrong pointer is an error.
CUresult cuMemHostAlloc(void **p, size_t bytes, unsigned) {
    void *m = aligned_alloc(4096, (bytes + 4095) / 4096 * 4096);
    if (!m) return CUDA_ERROR_OUT_OF_MEMORY;
    std::lock_guard<std::mutex> g(lock);
    pinned[m] = bytes;
    *p = m;
    return CUDA_SUCCESS;
}
CUresult cuMemFreeHost(void *p) {
    std::lock_guard<std::mutex> g(lock);
    auto it = pinned.find(p);
    if (it == pinned.end()) return CUDA_ERROR_INVALID_VALUE;
    pinned.erase(it);
    free(p);
    return CUDA_SUCCESS;
}
CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t n, void *stream) {
    enqueue(stream, [=] { memcpy((void *)dst, src, n); });
    return CUDA_SUCCESS;
}
CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t n, void *stream) {
    enqueue(stream, [=] { memmove((void *)dst, (const void *)src, n); });
    return CUDA_SUCCESS;
}
CUresult cuMemsetD8Async(CUdeviceptr p, unsigned char v, size_t n, void *stream) {
    enqueue(stream, [=] { memset((void *)p, v, n); });
    return CUDA_SUCCESS;
}

CUresult cuModuleLoadData(void **module, const void *image) {
    std::lock_guard<std::mutex> g(lock);
    loadUnits();
    // The image is NVRTC's real CUBIN (an ELF file): its size is in the ELF header.
    const unsigned char *e = (const unsigned char *)image;
    if (memcmp(e, "\x7f" "ELF", 4) != 0) return CUDA_ERROR_INVALID_IMAGE;
    uint64_t shoff; uint16_t shentsize, shnum;
    memcpy(&shoff, e + 0x28, 8); memcpy(&shentsize, e + 0x3A, 2); memcpy(&shnum, e + 0x3C, 2);
    size_t size = shoff + (size_t)shentsize * shnum;
    Unit *best = nullptr;
    for (auto &u : units) {
        bool all = u.count > 0;
        for (int i = 0; i < u.count && all; i++) all = contains(image, size, u.kernels[i].name);
        if (all && (!best || u.count > best->count)) best = &u;
    }
    if (!best) return CUDA_ERROR_INVALID_IMAGE;
    *module = new Module{best};
    return CUDA_SUCCESS;
}
CUresult cuModuleGetFunction(void **function, void *module, const char *name) {
    Unit *u = ((Module *)module)->unit;
    for (int i = 0; i < u->count; i++) {
        if (strcmp(u->kernels[i].name, name) == 0) {
            *function = new Function{name, u->kernels[i].launch, u->args ? &u->args[i] : nullptr};
            return CUDA_SUCCESS;
        }
    }
    return CUDA_ERROR_NOT_FOUND;
}

CUresult cuLaunchKernel(void *function, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                        unsigned shared, void *stream, void **params, void **extra) {
    Function *f = (Function *)function;
    if (extra || gx == 0 || gy == 0 || gz == 0 || bx == 0 || by == 0 || bz == 0 || bx * by * bz > 1024) {
        fprintf(stderr, "fake libcuda: %s launched with grid (%u,%u,%u) block (%u,%u,%u)\n", f->name.c_str(), gx, gy, gz, bx, by, bz);
        return CUDA_ERROR_INVALID_VALUE;
    }
    nd_dim3 grid{gx, gy, gz}, block{bx, by, bz};
    Stream *s = (Stream *)stream;
    if (s && s->capture) {
        // Recorded: the argument values are copied now (the caller's buffer is gone by replay).
        if (!f->args) { fprintf(stderr, "fake libcuda: %s: no argument sizes, cannot capture\n", f->name.c_str()); return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED; }
        auto values = std::make_shared<std::vector<std::vector<unsigned char>>>();
        for (unsigned i = 0; i < f->args->count; i++) {
            const unsigned char *p = (const unsigned char *)params[i];
            values->emplace_back(p, p + f->args->sizes[i]);
        }
        nd_emu_launch_fn launch = f->launch;
        enqueue(stream, [=] {
            std::vector<void *> ps;
            for (auto &v : *values) ps.push_back(v.data());
            launch(ps.data(), grid, block, shared);
        });
        return CUDA_SUCCESS;
    }
    advance(stream);
    f->launch(params, grid, block, shared);
    return CUDA_SUCCESS;
}

CUresult cuStreamCreate(void **stream, unsigned) {
    Stream *s = new Stream();
    std::lock_guard<std::mutex> g(lock);
    streams.insert(s);
    *stream = s;
    return CUDA_SUCCESS;
}
CUresult cuStreamDestroy_v2(void *stream) {
    std::lock_guard<std::mutex> g(lock);
    streams.erase((Stream *)stream);
    for (Stream *s : streams) s->reach.erase((Stream *)stream);
    delete (Stream *)stream;
    return CUDA_SUCCESS;
}
CUresult cuStreamSynchronize(void *stream) {
    Stream *s = (Stream *)stream;
    return s && s->capture ? CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED : CUDA_SUCCESS;
}
CUresult cuEventCreate(void **event, unsigned) { *event = new Event(); return CUDA_SUCCESS; }
CUresult cuEventDestroy_v2(void *event) { delete (Event *)event; return CUDA_SUCCESS; }
/// The work before an event has run (work runs when enqueued), unless the event is part of a capture.
CUresult cuEventSynchronize(void *event) {
    Event *e = (Event *)event;
    if (!e) return CUDA_ERROR_INVALID_HANDLE;
    std::lock_guard<std::mutex> g(lock);
    return captureAlive(e->captureId) ? CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED : CUDA_SUCCESS;
}
CUresult cuEventRecord(void *event, void *stream) {
    Event *e = (Event *)event;
    Stream *s = (Stream *)stream;
    if (!e) return CUDA_ERROR_INVALID_HANDLE;
    std::lock_guard<std::mutex> g(lock);
    *e = Event{s, 0, {}};
    if (s && s->capture) {   // the legacy stream (nullptr) never captures
        e->captureId = s->captureId;
        e->reach = s->reach;
        e->reach[s] = s->epoch;
    }
    return CUDA_SUCCESS;
}
CUresult cuStreamWaitEvent(void *stream, void *event, unsigned) {
    Event *e = (Event *)event;
    Stream *s = (Stream *)stream;
    if (!e) return CUDA_ERROR_INVALID_HANDLE;
    std::lock_guard<std::mutex> g(lock);
    if (!captureAlive(e->captureId)) return CUDA_SUCCESS;   // an ordinary event (or a finished capture's): its work ran
    if (!s) return CUDA_ERROR_STREAM_CAPTURE_ISOLATION;   // the legacy stream cannot join a capture
    if (s->capture && s->captureId != e->captureId) return CUDA_ERROR_STREAM_CAPTURE_MERGE;
    if (!s->capture) {   // fork: `s` joins the capture where the event was recorded
        Stream *origin = nullptr;
        for (Stream *t : streams) if (t->captureId == e->captureId && t->origin) origin = t;
        if (!origin) return CUDA_ERROR_ILLEGAL_STATE;
        s->capture = origin->capture;
        s->captureId = e->captureId;
        s->origin = false;
        s->joinedAt = s->epoch;
        s->reach.clear();
    }
    merge(s->reach, e->reach);   // join: `s` is now ordered after the work the event saw
    return CUDA_SUCCESS;
}

CUresult cuStreamBeginCapture_v2(void *stream, int mode) {
    Stream *s = (Stream *)stream;
    if (!s) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;   // the legacy stream cannot be captured
    if (s->capture || mode < 0 || mode > 2) return CUDA_ERROR_ILLEGAL_STATE;
    std::lock_guard<std::mutex> g(lock);
    s->capture = new Graph();
    s->captureId = nextCaptureId++;
    s->origin = true;
    s->reach.clear();
    return CUDA_SUCCESS;
}
CUresult cuStreamEndCapture(void *stream, void **graph) {
    Stream *s = (Stream *)stream;
    if (!s || !s->capture) return CUDA_ERROR_ILLEGAL_STATE;
    if (!s->origin) return CUDA_ERROR_STREAM_CAPTURE_UNMATCHED;   // the capture was not begun on this stream
    std::lock_guard<std::mutex> g(lock);
    // Every stream that joined stops capturing; its work must have been joined back into the origin.
    bool unjoined = false;
    for (Stream *t : streams) {
        if (t == s || t->captureId != s->captureId) continue;
        auto r = s->reach.find(t);
        uint64_t joined = std::max(t->joinedAt, r == s->reach.end() ? 0 : r->second);
        if (t->epoch > joined) unjoined = true;
        t->capture = nullptr;
        t->captureId = 0;
        t->reach.clear();
    }
    Graph *captured = s->capture;
    s->capture = nullptr;
    s->captureId = 0;
    s->origin = false;
    s->reach.clear();
    if (unjoined) {
        delete captured;
        *graph = nullptr;
        return CUDA_ERROR_STREAM_CAPTURE_UNJOINED;
    }
    *graph = captured;
    return CUDA_SUCCESS;
}
CUresult cuGraphGetNodes(void *graph, void *nodes, size_t *count) {
    if (nodes) return CUDA_ERROR_INVALID_VALUE;
    *count = ((Graph *)graph)->nodes.size();
    return CUDA_SUCCESS;
}
CUresult cuGraphInstantiateWithFlags(void **exec, void *graph, unsigned long long) {
    *exec = new GraphExec{((Graph *)graph)->nodes};
    return CUDA_SUCCESS;
}
CUresult cuGraphLaunch(void *exec, void *stream) {
    Stream *s = (Stream *)stream;
    if (s && s->capture) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
    for (auto &node : ((GraphExec *)exec)->nodes) (*node)();
    return CUDA_SUCCESS;
}
CUresult cuGraphExecDestroy(void *exec) { delete (GraphExec *)exec; return CUDA_SUCCESS; }
CUresult cuGraphDestroy(void *graph) { delete (Graph *)graph; return CUDA_SUCCESS; }

} // extern "C"
