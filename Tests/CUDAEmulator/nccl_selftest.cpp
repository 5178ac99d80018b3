// Standalone test of fake_nccl.cpp and of fake_cuda.cpp's cross-stream capture: forks K ranks, each
// with its own emulated GPU, which all-reduce, reduce-scatter and all-gather against references
// computed in rank order, then record an all-reduce on a forked stream into a CUDA graph and replay it.
//
//   bash Tests/CUDAEmulator/build.sh OUT          # OUT/lib/libcuda.so.1 and OUT/lib/libnccl.so.2
//   clang++ -std=c++17 -O1 Tests/CUDAEmulator/nccl_selftest.cpp -ldl -o /tmp/nccl_selftest
//   /tmp/nccl_selftest OUT/lib/libcuda.so.1 OUT/lib/libnccl.so.2 3      # K = 3 ranks; exit status 0 when all pass
#include <dirent.h>
#include <dlfcn.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

typedef struct { char internal[128]; } ncclUniqueId;
typedef unsigned long long CUdeviceptr;

static void *cuda, *nccl;
template <typename F> static F sym(void *lib, const char *name) {
    void *p = dlsym(lib, name);
    if (!p) { fprintf(stderr, "missing %s\n", name); exit(2); }
    return (F)p;
}
#define CU(name, ...) sym<int (*)(__VA_ARGS__)>(cuda, #name)
#define NC(name, ...) sym<int (*)(__VA_ARGS__)>(nccl, #name)

static int rank_, passed, failed;
#define CHECK(cond, ...) do { if (cond) passed++; else { failed++; fprintf(stderr, "rank %d: line %d: %s: ", rank_, __LINE__, #cond); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

/// Rank r's input (different per rank, per `seed`).
static std::vector<float> input(int r, size_t n, int seed) {
    std::vector<float> v(n);
    for (size_t i = 0; i < n; i++) v[i] = sinf(0.37f * i + 1.3f * r + seed) * (1 + r) + 0.001f * seed;
    return v;
}
/// Element-wise sum over ranks 0..K-1 of input(r), in rank order, from element `first`.
static std::vector<float> sumOfInputs(int K, size_t n, int seed, size_t first = 0, size_t total = 0) {
    std::vector<float> acc;
    for (int r = 0; r < K; r++) {
        std::vector<float> v = input(r, total ? total : n, seed);
        for (size_t i = 0; i < n; i++) { if (r == 0) acc.push_back(v[first + i]); else acc[i] += v[first + i]; }
    }
    return acc;
}
static uint16_t bf16(float f) { uint32_t u; memcpy(&u, &f, 4); return (uint16_t)((u + 0x7FFF + ((u >> 16) & 1)) >> 16); }
static float fromBf16(uint16_t h) { uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f; }

static void runRank(int rank, int K, int idPipe[][2]) {
    rank_ = rank;
    auto alloc = CU(cuMemAlloc_v2, CUdeviceptr *, size_t);
    auto streamCreate = CU(cuStreamCreate, void **, unsigned);
    auto eventCreate = CU(cuEventCreate, void **, unsigned);
    auto record = CU(cuEventRecord, void *, void *);
    auto wait = CU(cuStreamWaitEvent, void *, void *, unsigned);
    auto sync = CU(cuStreamSynchronize, void *);
    auto begin = CU(cuStreamBeginCapture_v2, void *, int);
    auto end = CU(cuStreamEndCapture, void *, void **);
    auto copy = CU(cuMemcpyDtoDAsync_v2, CUdeviceptr, CUdeviceptr, size_t, void *);
    auto memset8 = CU(cuMemsetD8Async, CUdeviceptr, unsigned char, size_t, void *);
    auto allReduce = NC(ncclAllReduce, const void *, void *, size_t, int, int, void *, void *);
    auto getAsyncError = NC(ncclCommGetAsyncError, void *, int *);
    auto lastError = sym<const char *(*)(void *)>(nccl, "ncclGetLastError");
    auto initRank = sym<int (*)(void **, int, ncclUniqueId, int)>(nccl, "ncclCommInitRank");
    auto device = [&](size_t bytes) { CUdeviceptr p = 0; alloc(&p, bytes); return (void *)p; };   // host memory, emulated

    int version = 0;
    CHECK(NC(ncclGetVersion, int *)(&version) == 0 && version == 22105, "version %d", version);
    ncclUniqueId ids[2];   // rank 0 makes them and sends them to the others through pipes
    if (rank == 0) {
        for (auto &id : ids) CHECK(NC(ncclGetUniqueId, ncclUniqueId *)(&id) == 0, "ncclGetUniqueId");
        CHECK(memcmp(&ids[0], &ids[1], sizeof ids[0]) != 0, "two ids are equal");
        for (int r = 1; r < K; r++) CHECK(write(idPipe[r][1], ids, sizeof ids) == sizeof ids, "write id");
        ncclUniqueId bad{};
        void *c = nullptr;
        CHECK(initRank(&c, K, bad, 0) == 4 && strlen(lastError(nullptr)) > 0, "an id without the magic prefix");
        CHECK(initRank(&c, K, ids[0], K) == 4, "rank K of K");
    } else {
        CHECK(read(idPipe[rank][0], ids, sizeof ids) == sizeof ids, "read id");
    }
    void *comm = nullptr;
    CHECK(initRank(&comm, K, ids[0], rank) == 0 && comm, "ncclCommInitRank: %s", lastError(nullptr));

    // All-reduce: sum out of place, avg in place, int32 max, bf16 sum; all bitwise.
    const size_t N = 1000;
    float *send = (float *)device(N * 4), *recv = (float *)device(N * 4);
    std::vector<float> mine = input(rank, N, 1), want = sumOfInputs(K, N, 1);
    memcpy(send, mine.data(), N * 4);
    CHECK(allReduce(send, recv, N, 7, 0, comm, nullptr) == 0, "ncclAllReduce");
    CHECK(memcmp(recv, want.data(), N * 4) == 0, "float32 sum");
    CHECK(memcmp(send, mine.data(), N * 4) == 0, "send buffer unchanged");
    CHECK(allReduce(send, send, N, 7, 4, comm, nullptr) == 0, "in-place avg");
    for (float &w : want) w /= K;
    CHECK(memcmp(send, want.data(), N * 4) == 0, "float32 avg in place");
    int32_t *ints = (int32_t *)device(N * 4);
    for (size_t i = 0; i < N; i++) ints[i] = (int32_t)((i * 7919 + rank * 104729) % 1000) - 500;
    CHECK(allReduce(ints, ints, N, 2, 2, comm, nullptr) == 0, "int32 max");
    bool ok = true;
    for (size_t i = 0; i < N; i++) {
        int32_t m = INT32_MIN;
        for (int r = 0; r < K; r++) m = std::max(m, (int32_t)((i * 7919 + r * 104729) % 1000) - 500);
        ok = ok && ints[i] == m;
    }
    CHECK(ok, "int32 max");
    uint16_t *halves = (uint16_t *)device(N * 2);
    for (size_t i = 0; i < N; i++) halves[i] = bf16(mine[i]);
    CHECK(allReduce(halves, halves, N, 9, 0, comm, nullptr) == 0, "bf16 sum");
    ok = true;
    std::vector<std::vector<float>> inputs;
    for (int r = 0; r < K; r++) inputs.push_back(input(r, N, 1));
    for (size_t i = 0; i < N; i++) {
        float acc = fromBf16(bf16(inputs[0][i]));
        for (int r = 1; r < K; r++) acc += fromBf16(bf16(inputs[r][i]));
        ok = ok && halves[i] == bf16(acc);
    }
    CHECK(ok, "bf16 sum");
    CHECK(allReduce(send, recv, N, 7, 9, comm, nullptr) == 4 && strstr(lastError(comm), "op 9"), "bad op: %s", lastError(comm));

    // Reduce-scatter (block r of the sum) and all-gather (every rank's block, in rank order).
    const size_t M = 100;
    float *whole = (float *)device(K * M * 4), *block = (float *)device(M * 4);
    std::vector<float> all = input(rank, K * M, 2), blockWant = sumOfInputs(K, M, 2, rank * M, K * M);
    memcpy(whole, all.data(), K * M * 4);
    CHECK(NC(ncclReduceScatter, const void *, void *, size_t, int, int, void *, void *)(whole, block, M, 7, 0, comm, nullptr) == 0, "reduce-scatter");
    CHECK(memcmp(block, blockWant.data(), M * 4) == 0, "reduce-scatter block %d", rank);
    CHECK(NC(ncclAllGather, const void *, void *, size_t, int, void *, void *)(block, whole, M, 7, comm, nullptr) == 0, "all-gather");
    std::vector<float> gathered = sumOfInputs(K, K * M, 2);
    CHECK(memcmp(whole, gathered.data(), K * M * 4) == 0, "all-gather");

    // Capture: A copies the input, B (joined through e1) all-reduces it, A (joined back through e2) copies the result.
    void *A, *B, *C, *e1, *e2, *e3, *graph = nullptr, *exec = nullptr;
    streamCreate(&A, 1); streamCreate(&B, 1); streamCreate(&C, 1);
    eventCreate(&e1, 2); eventCreate(&e2, 2); eventCreate(&e3, 2);
    float *in = (float *)device(N * 4), *buf = (float *)device(N * 4), *out = (float *)device(N * 4), *out2 = (float *)device(N * 4);
    memset(out2, 0, N * 4);
    CHECK(begin(A, 2) == 0, "begin capture");
    copy((CUdeviceptr)buf, (CUdeviceptr)in, N * 4, A);
    CHECK(record(e1, A) == 0 && wait(B, e1, 0) == 0, "B joins A's capture");
    CHECK(sync(B) == 900, "cuStreamSynchronize on a joined stream");
    CHECK(wait(nullptr, e1, 0) == 905, "the legacy stream waits on a capture's event");
    CHECK(begin(C, 2) == 0 && wait(C, e1, 0) == 902 && end(C, &graph) == 0, "a stream capturing another graph waits");
    CU(cuGraphDestroy, void *)(graph);
    CHECK(allReduce(buf, out, N, 7, 0, comm, B) == 0, "all-reduce on B");
    CHECK(record(e2, B) == 0 && wait(A, e2, 0) == 0, "B joins back");
    copy((CUdeviceptr)out2, (CUdeviceptr)out, N * 4, A);
    CHECK(end(A, &graph) == 0 && graph, "end capture");
    CHECK(sync(B) == 0, "B left the capture");
    size_t nodes = 0;
    CU(cuGraphGetNodes, void *, void *, size_t *)(graph, nullptr, &nodes);
    CHECK(nodes == 3, "%zu nodes", nodes);
    CHECK(out2[0] == 0 && out2[N - 1] == 0, "nothing ran while capturing");
    CHECK(CU(cuGraphInstantiateWithFlags, void **, void *, unsigned long long)(&exec, graph, 0) == 0, "instantiate");
    for (int seed = 10; seed < 12; seed++) {
        std::vector<float> x = input(rank, N, seed), sum = sumOfInputs(K, N, seed);
        memcpy(in, x.data(), N * 4);
        CHECK(CU(cuGraphLaunch, void *, void *)(exec, nullptr) == 0, "launch");
        CHECK(memcmp(out2, sum.data(), N * 4) == 0, "replay with seed %d reduces the new input", seed);
    }

    // A fork that is never joined back: CUDA_ERROR_STREAM_CAPTURE_UNJOINED, the graph (and its all-reduce) discarded.
    CHECK(begin(A, 2) == 0 && record(e1, A) == 0 && wait(B, e1, 0) == 0, "fork");
    CHECK(allReduce(buf, out, N, 7, 0, comm, B) == 0, "all-reduce on B");
    graph = &graph;
    CHECK(end(A, &graph) == 904 && !graph && sync(B) == 0, "unjoined fork");
    // Joined back through another stream: A -> B -> C, C's work joined into B, B's into A.
    CHECK(begin(A, 2) == 0 && record(e1, A) == 0 && wait(B, e1, 0) == 0 && record(e2, B) == 0 && wait(C, e2, 0) == 0, "fork twice");
    memset8((CUdeviceptr)out, 0, 4, C);
    memset8((CUdeviceptr)buf, 0, 4, B);
    CHECK(record(e3, C) == 0 && wait(B, e3, 0) == 0 && record(e2, B) == 0 && wait(A, e2, 0) == 0, "join twice");
    CHECK(end(A, &graph) == 0 && graph, "joined through another stream");
    CU(cuGraphDestroy, void *)(graph);

    // Ranks that call different collectives (on a second communicator): ncclInvalidUsage as the
    // async error on every rank (each prints it), later collectives refused; then abort.
    void *comm2 = nullptr;
    int async = -1;
    CHECK(initRank(&comm2, K, ids[1], rank) == 0, "second communicator");
    fprintf(stderr, "(rank %d: an error about a different collective is expected next)\n", rank);
    CHECK(allReduce(send, recv, rank == 0 ? N : N - 1, 7, 0, comm2, nullptr) == 0, "mismatched all-reduce");
    CHECK(getAsyncError(comm2, &async) == 0 && async == 5, "async error after a mismatch: %d", async);
    CHECK(allReduce(send, recv, N, 7, 0, comm2, nullptr) == 5, "a collective on a failed communicator");

    // The first communicator's numbering still agrees across ranks (the discarded all-reduce never
    // ran); this also keeps every rank from aborting the second one while another still reads its files.
    memcpy(send, mine.data(), N * 4);
    want = sumOfInputs(K, N, 1);
    CHECK(allReduce(send, recv, N, 7, 0, comm, nullptr) == 0 && memcmp(recv, want.data(), N * 4) == 0, "all-reduce after the captures");
    CHECK(NC(ncclCommAbort, void *)(comm2) == 0, "abort");
    CHECK(getAsyncError(comm, &async) == 0 && async == 0, "async error %d", async);
    CHECK(NC(ncclCommDestroy, void *)(comm) == 0, "destroy");
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s LIBCUDA LIBNCCL [RANKS]\n", argv[0]); return 2; }
    int K = argc > 3 ? atoi(argv[3]) : 2;
    cuda = dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL);
    nccl = cuda ? dlopen(argv[2], RTLD_NOW) : nullptr;
    if (!nccl) { fprintf(stderr, "%s\n", dlerror()); return 2; }
    char tmp[] = "/tmp/nccl-selftest-XXXXXX";   // the rendezvous folders go here: it must be empty at the end
    if (!mkdtemp(tmp)) { perror("mkdtemp"); return 2; }
    setenv("TMPDIR", tmp, 1);
    int *counts = (int *)mmap(nullptr, 2 * K * sizeof(int), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (K < 2 || K > 64) { fprintf(stderr, "2 to 64 ranks\n"); return 2; }
    int pipes[64][2];
    for (int r = 0; r < K; r++) if (pipe(pipes[r]) != 0) { perror("pipe"); return 2; }
    std::vector<pid_t> children;
    for (int r = 0; r < K; r++) {
        pid_t pid = fork();
        if (pid == 0) {
            runRank(r, K, pipes);
            counts[2 * r] = passed;
            counts[2 * r + 1] = failed;
            _exit(0);
        }
        children.push_back(pid);
    }
    int total = 0, failures = 0;
    for (int r = 0; r < K; r++) {
        int status = 0;
        waitpid(children[r], &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) { fprintf(stderr, "rank %d: exited abnormally (%d)\n", r, status); failures++; }
        total += counts[2 * r];
        failures += counts[2 * r + 1];
    }
    int left = 0;
    if (DIR *d = opendir(tmp)) {
        while (dirent *e = readdir(d)) if (e->d_name[0] != '.') { fprintf(stderr, "left behind: %s/%s\n", tmp, e->d_name); left++; }
        closedir(d);
    }
    if (left == 0) { rmdir(tmp); total++; } else failures++;
    if (failures) { printf("%d checks passed, %d failed (%d ranks)\n", total, failures, K); return 1; }
    printf("%d checks passed (%d ranks)\n", total, K);
    return 0;
}
