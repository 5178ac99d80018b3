// A stand-in for NVIDIA's NCCL (libnccl.so.2) on machines without a GPU: the subset of nccl.h that
// Sources/NanoCUDA/NCCL.swift and NCCLCommunicator.swift call (plus reduce-scatter and all-gather),
// with nccl.h's C signatures and enum values, so several processes (under mpirun, each with its
// own emulated GPU from fake_cuda.cpp) run the real NCCLCommunicator code.
//
// Semantics:
// - An id is 128 bytes: "fake-nccl:" and random bytes. The ranks of a communicator meet through
//   files in $TMPDIR/nd-fake-nccl-<hex of the id's first 16 random bytes>/ (TMPDIR defaults to
//   /tmp): ncclCommInitRank writes rank.<r> (its pid and nranks) and waits for every rank's.
// - A collective is checked when it is called (a bad type, op, count or communicator is
//   ncclInvalidArgument with a message for ncclGetLastError) and run in stream order through the
//   fake driver's nd_emu_enqueue: now, or at every replay of a graph being captured. When it runs
//   it takes the communicator's next call number n, writes its send buffer to <n>.<rank> (a
//   temporary file renamed into place), waits for every rank's file of call n and reduces them in
//   rank order, so every rank computes bitwise the same result; a rank deletes its file of call
//   n-2 (every rank has read it: each wrote call n-1 after reading n-2). All-reduce,
//   reduce-scatter and all-gather share the numbering; the files carry the collective, type, op
//   and count, and ranks that disagree get an error.
// - Types: int8, uint8, int32, uint32, int64, uint64 (wrapping sum and product), float16, bfloat16
//   (computed in float in rank order, rounded to nearest even once), float32, float64; ops sum,
//   prod, max, min, avg (sum divided by nranks; integer division for integers).
// - A failure while running (a peer that does not write its file within the timeout or whose
//   process exited, an I/O error, ranks calling different collectives) is printed to stderr and
//   kept as the communicator's async error (ncclRemoteError, ncclSystemError, ncclInvalidUsage);
//   later collectives of that communicator are skipped. ncclCommDestroy meets the other ranks
//   once more (destroy.<r>), and the last to leave removes the folder; ncclCommAbort leaves at
//   once, removing this rank's files.
//
// Environment: ND_EMU_NCCL_TIMEOUT_S (default 120): how long a rank waits for the others.
//
// Build (OUT holds libcuda.so.1 from fake_cuda.cpp, which provides nd_emu_enqueue):
//   clang++ -std=c++17 -O2 -fPIC -shared fake_nccl.cpp -o OUT/libnccl.so.2 -Wl,-soname,libnccl.so.2
//     -L OUT -l:libcuda.so.1 -Wl,-rpath,'$ORIGIN'      (one command line)

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

extern "C" void nd_emu_enqueue(void *stream, void (*run)(void *), void *ctx, void (*release)(void *));

namespace {

// ---- nccl.h values ---------------------------------------------------------------------------

typedef int ncclResult_t;
enum : int {
    ncclSuccess = 0, ncclUnhandledCudaError = 1, ncclSystemError = 2, ncclInternalError = 3,
    ncclInvalidArgument = 4, ncclInvalidUsage = 5, ncclRemoteError = 6, ncclInProgress = 7,
};
enum : int {
    ncclInt8 = 0, ncclUint8 = 1, ncclInt32 = 2, ncclUint32 = 3, ncclInt64 = 4, ncclUint64 = 5,
    ncclFloat16 = 6, ncclFloat32 = 7, ncclFloat64 = 8, ncclBfloat16 = 9, ncclTypeCount = 10,
};
enum : int { ncclSum = 0, ncclProd = 1, ncclMax = 2, ncclMin = 3, ncclAvg = 4, ncclOpCount = 5 };

const char magic[] = "fake-nccl:";
const size_t magicLength = sizeof(magic) - 1;
const size_t folderBytes = 16;   // random bytes of the id that name the rendezvous folder

enum Kind : int { AllReduce = 1, ReduceScatter = 2, AllGather = 3 };
const char *kindName(int kind) {
    return kind == AllReduce ? "all-reduce" : kind == ReduceScatter ? "reduce-scatter" : kind == AllGather ? "all-gather" : "?";
}
const size_t typeSizes[ncclTypeCount] = {1, 1, 4, 4, 8, 8, 2, 4, 8, 2};

// ---- errors --------------------------------------------------------------------------------

std::mutex errorLock;
char lastError[1024] = "";

/// Keeps `message` for ncclGetLastError and returns `code`.
ncclResult_t fail(ncclResult_t code, const char *format, ...) {
    std::lock_guard<std::mutex> g(errorLock);
    va_list ap;
    va_start(ap, format);
    vsnprintf(lastError, sizeof lastError, format, ap);
    va_end(ap);
    return code;
}

// ---- files ---------------------------------------------------------------------------------

double timeoutSeconds() {
    const char *v = getenv("ND_EMU_NCCL_TIMEOUT_S");
    double t = v ? atof(v) : 0;
    return t > 0 ? t : 120;
}

bool exists(const std::string &path) { return access(path.c_str(), F_OK) == 0; }

/// Writes `bytes` to `path` whole: to a temporary name first, then renamed, so no reader sees part.
bool writeFile(const std::string &path, const void *header, size_t headerBytes, const void *bytes, size_t count) {
    std::string tmp = path + ".tmp";
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return false;
    bool ok = true;
    const void *parts[2] = {header, bytes};
    size_t sizes[2] = {headerBytes, count};
    for (int i = 0; i < 2 && ok; i++) {
        const char *p = (const char *)parts[i];
        for (size_t left = sizes[i]; left > 0 && ok;) {
            ssize_t n = write(fd, p, left);
            if (n < 0 && errno == EINTR) continue;
            ok = n > 0;
            if (ok) { p += n; left -= (size_t)n; }
        }
    }
    ok = close(fd) == 0 && ok;
    if (ok) ok = rename(tmp.c_str(), path.c_str()) == 0;
    if (!ok) unlink(tmp.c_str());
    return ok;
}

bool readFile(const std::string &path, std::vector<unsigned char> &out) {
    int fd = open(path.c_str(), O_RDONLY);
    if (fd < 0) return false;
    struct stat st;
    bool ok = fstat(fd, &st) == 0;
    if (ok) out.resize((size_t)st.st_size);
    for (size_t done = 0; ok && done < out.size();) {
        ssize_t n = read(fd, out.data() + done, out.size() - done);
        if (n < 0 && errno == EINTR) continue;
        ok = n > 0;
        if (ok) done += (size_t)n;
    }
    close(fd);
    return ok;
}

// ---- communicators --------------------------------------------------------------------------

struct State {
    int nranks = 0, rank = 0;
    std::string folder;
    std::vector<pid_t> pids;   // every rank's process (from rank.<r>), to notice one that exited
    uint64_t calls = 0;        // collectives run so far (numbered when they run, so replays get fresh numbers)
    ncclResult_t asyncError = ncclSuccess;
    bool destroyed = false;    // a graph may still hold collectives of a destroyed communicator
    std::mutex lock;
};

std::string dataFile(const State &s, uint64_t call, int rank) {
    return s.folder + "/" + std::to_string(call) + "." + std::to_string(rank);
}

/// Waits until `path(r)` exists for every rank r. On failure returns ncclRemoteError (timeout, a
/// peer's process exited) with `what` in the message.
ncclResult_t waitForAll(const State &s, const std::function<std::string(int)> &path, const std::string &what) {
    auto start = std::chrono::steady_clock::now();
    double timeout = timeoutSeconds();
    for (int r = 0, polls = 0; r < s.nranks;) {
        if (exists(path(r))) { r++; continue; }
        double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (waited > timeout)
            return fail(ncclRemoteError, "fake NCCL: rank %d of %d: %s: no word from rank %d after %.0f s (%s)",
                        s.rank, s.nranks, what.c_str(), r, timeout, s.folder.c_str());
        if (++polls % 256 == 0 && r < (int)s.pids.size() && kill(s.pids[r], 0) != 0 && errno == ESRCH)
            return fail(ncclRemoteError, "fake NCCL: rank %d of %d: %s: rank %d (pid %d) exited",
                        s.rank, s.nranks, what.c_str(), r, (int)s.pids[r]);
        std::this_thread::sleep_for(std::chrono::microseconds(polls < 100 ? 50 : 1000));
    }
    return ncclSuccess;
}

struct Comm { std::shared_ptr<State> state; };

// ---- reductions ----------------------------------------------------------------------------

float halfToFloat(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF, bits;
    if (exponent == 0x1F) bits = sign | 0x7F800000u | (mantissa << 13);    // inf, NaN
    else if (exponent != 0) bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
    else {                                                                  // zero, subnormal: mantissa·2⁻²⁴
        float f = std::ldexp((float)mantissa, -24);
        memcpy(&bits, &f, 4);
        bits |= sign;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t floatToHalf(float f) {   // round to nearest even
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7FFFFFFF;
    if (a > 0x7F800000) return sign | 0x7E00;                 // NaN
    if (a >= 0x477FF000) return sign | 0x7C00;                // rounds past 65504: inf
    if (a < 0x38800000) {                                     // below 2⁻¹⁴: subnormal or zero, in units of 2⁻²⁴
        float scaled = std::fabs(f) * 16777216.0f;            // exact (power of two)
        return sign | (uint16_t)std::nearbyint(scaled);       // the default rounding mode: nearest even
    }
    uint32_t rounded = a + 0xFFF + ((a >> 13) & 1);
    return sign | (uint16_t)((rounded - 0x38000000) >> 13);
}

float bf16ToFloat(uint16_t h) { uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f; }
uint16_t floatToBf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7FFFFFFF) > 0x7F800000) return 0x7FFF;   // NaN, as CUDA's conversion gives
    return (uint16_t)((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
}

/// Element i of every rank's buffer reduced in rank order. `C` is what the arithmetic runs in.
template <typename T, typename C>
void reduce(const std::vector<const unsigned char *> &inputs, unsigned char *out, size_t count, int op,
            C (*load)(T), T (*store)(C)) {
    for (size_t i = 0; i < count; i++) {
        T v;
        memcpy(&v, inputs[0] + i * sizeof(T), sizeof(T));
        C acc = load(v);
        for (size_t r = 1; r < inputs.size(); r++) {
            memcpy(&v, inputs[r] + i * sizeof(T), sizeof(T));
            C x = load(v);
            switch (op) {
            case ncclSum: case ncclAvg: acc = acc + x; break;
            case ncclProd: acc = acc * x; break;
            case ncclMax: acc = x > acc ? x : acc; break;
            case ncclMin: acc = x < acc ? x : acc; break;
            }
        }
        if (op == ncclAvg) acc = acc / (C)inputs.size();
        T result = store(acc);
        memcpy(out + i * sizeof(T), &result, sizeof(T));
    }
}

/// Integers: sum and product wrap (computed unsigned); max, min and avg are signed where T is.
template <typename T>
void reduceInteger(const std::vector<const unsigned char *> &inputs, unsigned char *out, size_t count, int op) {
    using U = typename std::make_unsigned<T>::type;
    if (op == ncclSum || op == ncclProd) {
        reduce<T, U>(inputs, out, count, op, [](T v) { return (U)v; }, [](U v) { return (T)v; });
        return;
    }
    if (op == ncclAvg) {   // the wrapped sum, then divided
        std::vector<unsigned char> sum(count * sizeof(T));
        reduce<T, U>(inputs, sum.data(), count, ncclSum, [](T v) { return (U)v; }, [](U v) { return (T)v; });
        for (size_t i = 0; i < count; i++) {
            T v;
            memcpy(&v, sum.data() + i * sizeof(T), sizeof(T));
            v = (T)(v / (T)inputs.size());
            memcpy(out + i * sizeof(T), &v, sizeof(T));
        }
        return;
    }
    reduce<T, T>(inputs, out, count, op, [](T v) { return v; }, [](T v) { return v; });
}

void reduceAny(int type, const std::vector<const unsigned char *> &inputs, unsigned char *out, size_t count, int op) {
    switch (type) {
    case ncclInt8: reduceInteger<int8_t>(inputs, out, count, op); break;
    case ncclUint8: reduceInteger<uint8_t>(inputs, out, count, op); break;
    case ncclInt32: reduceInteger<int32_t>(inputs, out, count, op); break;
    case ncclUint32: reduceInteger<uint32_t>(inputs, out, count, op); break;
    case ncclInt64: reduceInteger<int64_t>(inputs, out, count, op); break;
    case ncclUint64: reduceInteger<uint64_t>(inputs, out, count, op); break;
    case ncclFloat16: reduce<uint16_t, float>(inputs, out, count, op, halfToFloat, floatToHalf); break;
    case ncclBfloat16: reduce<uint16_t, float>(inputs, out, count, op, bf16ToFloat, floatToBf16); break;
    case ncclFloat32: reduce<float, float>(inputs, out, count, op, [](float v) { return v; }, [](float v) { return v; }); break;
    case ncclFloat64: reduce<double, double>(inputs, out, count, op, [](double v) { return v; }, [](double v) { return v; }); break;
    }
}

// ---- collectives ---------------------------------------------------------------------------

/// What every rank writes before its bytes, so ranks that called different collectives notice.
struct Header { char magic[8]; int32_t kind, type, op, pad; uint64_t count; };

/// A collective as enqueued: run (in stream order) by `runCollective`.
struct Collective {
    std::shared_ptr<State> state;
    int kind, type, op;
    const unsigned char *send;
    unsigned char *recv;
    size_t count;   // all-reduce: elements; reduce-scatter: elements received; all-gather: elements sent
};

/// Stores an error that happened while a collective ran: the communicator's async error.
void asyncFailure(State &s, ncclResult_t code) {
    s.asyncError = code;
    std::lock_guard<std::mutex> g(errorLock);
    fprintf(stderr, "%s\n", lastError);
}

void runCollective(void *context) {
    Collective &c = *(Collective *)context;
    State &s = *c.state;
    std::lock_guard<std::mutex> g(s.lock);
    if (s.destroyed) { asyncFailure(s, fail(ncclInvalidUsage, "fake NCCL: a %s ran on a destroyed communicator", kindName(c.kind))); return; }
    if (s.asyncError != ncclSuccess) return;   // the communicator is broken: nothing runs on it any more
    uint64_t call = ++s.calls;
    size_t element = typeSizes[c.type];
    size_t sent = (c.kind == ReduceScatter ? c.count * s.nranks : c.count) * element;
    Header header{{'n', 'd', 'n', 'c', 'c', 'l', '1', 0}, c.kind, c.type, c.op, 0, c.count};
    std::string what = std::string(kindName(c.kind)) + " (call " + std::to_string(call) + ")";

    if (!writeFile(dataFile(s, call, s.rank), &header, sizeof header, c.send, sent)) {
        asyncFailure(s, fail(ncclSystemError, "fake NCCL: rank %d: %s: cannot write %s: %s", s.rank, what.c_str(),
                             dataFile(s, call, s.rank).c_str(), strerror(errno)));
        return;
    }
    ncclResult_t waited = waitForAll(s, [&](int r) { return dataFile(s, call, r); }, what);
    if (waited != ncclSuccess) { asyncFailure(s, waited); return; }

    std::vector<std::vector<unsigned char>> files(s.nranks);
    std::vector<const unsigned char *> inputs;
    for (int r = 0; r < s.nranks; r++) {
        if (!readFile(dataFile(s, call, r), files[r])) {
            asyncFailure(s, fail(ncclSystemError, "fake NCCL: rank %d: %s: cannot read %s: %s", s.rank, what.c_str(),
                                 dataFile(s, call, r).c_str(), strerror(errno)));
            return;
        }
        Header theirs;
        if (files[r].size() >= sizeof theirs) memcpy(&theirs, files[r].data(), sizeof theirs);
        if (files[r].size() != sizeof header + sent || memcmp(&theirs, &header, sizeof header) != 0) {
            asyncFailure(s, fail(ncclInvalidUsage, "fake NCCL: rank %d: %s: rank %d called a different collective "
                                 "(%s of %llu elements, type %d, op %d; this rank: %s of %zu, type %d, op %d)", s.rank,
                                 what.c_str(), r, kindName(theirs.kind), (unsigned long long)theirs.count, theirs.type,
                                 theirs.op, kindName(c.kind), c.count, c.type, c.op));
            return;
        }
        inputs.push_back(files[r].data() + sizeof header);
    }
    size_t blockBytes = c.count * element;
    if (c.kind == AllReduce) reduceAny(c.type, inputs, c.recv, c.count, c.op);
    else if (c.kind == ReduceScatter) {
        for (auto &p : inputs) p += s.rank * blockBytes;
        reduceAny(c.type, inputs, c.recv, c.count, c.op);
    } else {
        for (int r = 0; r < s.nranks; r++) memcpy(c.recv + r * blockBytes, inputs[r], blockBytes);
    }
    if (call > 2) unlink(dataFile(s, call - 2, s.rank).c_str());   // every rank has read it
}

void releaseCollective(void *context) { delete (Collective *)context; }

/// Checks a collective's arguments, then enqueues it on `stream`.
ncclResult_t enqueueCollective(int kind, const void *send, void *recv, size_t count, int type, int op, void *comm, void *stream) {
    const char *name = kindName(kind);
    if (!comm) return fail(ncclInvalidArgument, "fake NCCL: %s: comm is NULL", name);
    std::shared_ptr<State> state = ((Comm *)comm)->state;
    if (type < 0 || type >= ncclTypeCount) return fail(ncclInvalidArgument, "fake NCCL: %s: unknown data type %d", name, type);
    if (kind != AllGather && (op < 0 || op >= ncclOpCount))
        return fail(ncclInvalidArgument, "fake NCCL: %s: unsupported reduction op %d (sum, prod, max, min, avg are)", name, op);
    if (count > 0 && (!send || !recv)) return fail(ncclInvalidArgument, "fake NCCL: %s: NULL buffer for %zu elements", name, count);
    {
        std::lock_guard<std::mutex> g(state->lock);
        if (state->asyncError != ncclSuccess)
            return fail(state->asyncError, "fake NCCL: %s on a communicator that failed earlier", name);
    }
    Collective *c = new Collective{state, kind, type, op, (const unsigned char *)send, (unsigned char *)recv, count};
    nd_emu_enqueue(stream, runCollective, c, releaseCollective);
    return ncclSuccess;
}

std::string hex(const unsigned char *bytes, size_t n) {
    static const char digits[] = "0123456789abcdef";
    std::string s;
    for (size_t i = 0; i < n; i++) { s += digits[bytes[i] >> 4]; s += digits[bytes[i] & 15]; }
    return s;
}

} // namespace

extern "C" {

typedef struct { char internal[128]; } ncclUniqueId;

ncclResult_t ncclGetVersion(int *version) {
    if (!version) return fail(ncclInvalidArgument, "fake NCCL: ncclGetVersion: version is NULL");
    *version = 22105;   // 2.21.5
    return ncclSuccess;
}

const char *ncclGetErrorString(ncclResult_t code) {
    switch (code) {
    case ncclSuccess: return "no error";
    case ncclUnhandledCudaError: return "unhandled cuda error";
    case ncclSystemError: return "unhandled system error";
    case ncclInternalError: return "internal error";
    case ncclInvalidArgument: return "invalid argument";
    case ncclInvalidUsage: return "invalid usage";
    case ncclRemoteError: return "remote process exited or there was a network error";
    case ncclInProgress: return "NCCL operation in progress";
    default: return "unknown result code";
    }
}

const char *ncclGetLastError(void *) { return lastError; }

ncclResult_t ncclGetUniqueId(ncclUniqueId *id) {
    if (!id) return fail(ncclInvalidArgument, "fake NCCL: ncclGetUniqueId: id is NULL");
    memset(id->internal, 0, sizeof id->internal);
    memcpy(id->internal, magic, magicLength);
    int fd = open("/dev/urandom", O_RDONLY);
    size_t want = sizeof id->internal - magicLength;
    ssize_t got = fd < 0 ? -1 : read(fd, id->internal + magicLength, want);
    if (fd >= 0) close(fd);
    if (got != (ssize_t)want) return fail(ncclSystemError, "fake NCCL: ncclGetUniqueId: cannot read /dev/urandom");
    return ncclSuccess;
}

ncclResult_t ncclCommInitRank(void **comm, int nranks, ncclUniqueId id, int rank) {
    if (!comm) return fail(ncclInvalidArgument, "fake NCCL: ncclCommInitRank: comm is NULL");
    *comm = nullptr;
    if (nranks < 1) return fail(ncclInvalidArgument, "fake NCCL: ncclCommInitRank: nranks %d", nranks);
    if (rank < 0 || rank >= nranks) return fail(ncclInvalidArgument, "fake NCCL: ncclCommInitRank: rank %d of %d", rank, nranks);
    if (memcmp(id.internal, magic, magicLength) != 0)
        return fail(ncclInvalidArgument, "fake NCCL: ncclCommInitRank: not an id from this library's ncclGetUniqueId");

    auto s = std::make_shared<State>();
    s->nranks = nranks;
    s->rank = rank;
    const char *tmp = getenv("TMPDIR");
    s->folder = std::string(tmp && *tmp ? tmp : "/tmp") + "/nd-fake-nccl-" + hex((const unsigned char *)id.internal + magicLength, folderBytes);
    if (mkdir(s->folder.c_str(), 0755) != 0 && errno != EEXIST)
        return fail(ncclSystemError, "fake NCCL: cannot create %s: %s", s->folder.c_str(), strerror(errno));
    auto announce = [&](int r) { return s->folder + "/rank." + std::to_string(r); };
    if (exists(announce(rank))) return fail(ncclInvalidUsage, "fake NCCL: rank %d joined communicator %s twice", rank, s->folder.c_str());
    int mine[2] = {(int)getpid(), nranks};
    if (!writeFile(announce(rank), nullptr, 0, mine, sizeof mine))
        return fail(ncclSystemError, "fake NCCL: cannot write %s: %s", announce(rank).c_str(), strerror(errno));
    ncclResult_t waited = waitForAll(*s, announce, "ncclCommInitRank");
    if (waited != ncclSuccess) { unlink(announce(rank).c_str()); return ncclSystemError; }
    for (int r = 0; r < nranks; r++) {
        std::vector<unsigned char> bytes;
        int theirs[2] = {0, 0};
        if (!readFile(announce(r), bytes) || bytes.size() != sizeof theirs)
            return fail(ncclSystemError, "fake NCCL: cannot read %s", announce(r).c_str());
        memcpy(theirs, bytes.data(), sizeof theirs);
        if (theirs[1] != nranks)
            return fail(ncclInvalidUsage, "fake NCCL: rank %d opened the communicator with %d ranks, rank %d with %d", r, theirs[1], rank, nranks);
        s->pids.push_back(theirs[0]);
    }
    *comm = new Comm{s};
    return ncclSuccess;
}

ncclResult_t ncclAllReduce(const void *send, void *recv, size_t count, int type, int op, void *comm, void *stream) {
    return enqueueCollective(AllReduce, send, recv, count, type, op, comm, stream);
}
ncclResult_t ncclReduceScatter(const void *send, void *recv, size_t recvcount, int type, int op, void *comm, void *stream) {
    return enqueueCollective(ReduceScatter, send, recv, recvcount, type, op, comm, stream);
}
ncclResult_t ncclAllGather(const void *send, void *recv, size_t sendcount, int type, void *comm, void *stream) {
    return enqueueCollective(AllGather, send, recv, sendcount, type, ncclSum, comm, stream);
}

ncclResult_t ncclCommGetAsyncError(void *comm, ncclResult_t *error) {
    if (!comm || !error) return fail(ncclInvalidArgument, "fake NCCL: ncclCommGetAsyncError: NULL argument");
    State &s = *((Comm *)comm)->state;
    std::lock_guard<std::mutex> g(s.lock);
    *error = s.asyncError;
    return ncclSuccess;
}

ncclResult_t ncclCommCount(const void *comm, int *count) {
    if (!comm || !count) return fail(ncclInvalidArgument, "fake NCCL: ncclCommCount: NULL argument");
    *count = ((const Comm *)comm)->state->nranks;
    return ncclSuccess;
}
ncclResult_t ncclCommUserRank(const void *comm, int *rank) {
    if (!comm || !rank) return fail(ncclInvalidArgument, "fake NCCL: ncclCommUserRank: NULL argument");
    *rank = ((const Comm *)comm)->state->rank;
    return ncclSuccess;
}

/// Removes this rank's files (a rank still reading them fails, as a peer that aborts makes it), and
/// the folder when it is left empty.
void removeOwnFiles(const State &s) {
    for (uint64_t call = s.calls > 2 ? s.calls - 2 : 1; call <= s.calls; call++) unlink(dataFile(s, call, s.rank).c_str());
    for (const char *name : {"/rank.", "/destroy.", "/done."}) unlink((s.folder + name + std::to_string(s.rank)).c_str());
    rmdir(s.folder.c_str());
}

/// Leaves without waiting for the other ranks.
ncclResult_t ncclCommAbort(void *comm) {
    if (!comm) return ncclSuccess;
    std::shared_ptr<State> s = ((Comm *)comm)->state;
    std::lock_guard<std::mutex> g(s->lock);
    s->destroyed = true;
    delete (Comm *)comm;
    removeOwnFiles(*s);
    return ncclSuccess;
}

/// Meets the other ranks once more (so none is still reading this rank's files), then removes them.
ncclResult_t ncclCommDestroy(void *comm) {
    if (!comm) return ncclSuccess;
    std::shared_ptr<State> s = ((Comm *)comm)->state;
    std::lock_guard<std::mutex> g(s->lock);
    s->destroyed = true;
    delete (Comm *)comm;
    auto destroying = [&](int r) { return s->folder + "/destroy." + std::to_string(r); };
    auto done = [&](int r) { return s->folder + "/done." + std::to_string(r); };
    if (s->asyncError != ncclSuccess) { removeOwnFiles(*s); return ncclSuccess; }   // the others may be gone
    if (!writeFile(destroying(s->rank), nullptr, 0, nullptr, 0))
        return fail(ncclSystemError, "fake NCCL: cannot write %s: %s", destroying(s->rank).c_str(), strerror(errno));
    // A rank that saw every destroy.<r> renames its own to done.<r>: one of the two always exists.
    ncclResult_t result = waitForAll(*s, [&](int r) { return exists(done(r)) ? done(r) : destroying(r); }, "ncclCommDestroy");
    if (result != ncclSuccess) { fprintf(stderr, "%s\n", lastError); return result; }
    rename(destroying(s->rank).c_str(), done(s->rank).c_str());
    // The last rank to finish (it sees every done.<r>) removes the folder: no one waits in it any more.
    bool last = true;
    for (int r = 0; r < s->nranks && last; r++) last = exists(done(r));
    if (last) {
        if (DIR *d = opendir(s->folder.c_str())) {
            while (dirent *e = readdir(d))
                if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) unlink((s->folder + "/" + e->d_name).c_str());
            closedir(d);
        }
        rmdir(s->folder.c_str());
    }
    return ncclSuccess;
}

} // extern "C"
