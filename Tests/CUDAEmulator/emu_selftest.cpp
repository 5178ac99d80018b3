// emu_selftest.cpp: runs the real kernel units under the CPU emulator (cuda_emu.h) against plain
// CPU references, and checks the emulator's own semantics and error detection.
//
// Build and run (see README.md):
//   python3 Tests/CUDAEmulator/build_kernels.py /tmp/kern /tmp/emu_kernels
//   python3 Tests/CUDAEmulator/build_kernels.py Tests/CUDAEmulator/selftest_kernels /tmp/emu_selftest_kernels
//   /opt/swift/usr/bin/clang++ -std=c++17 -O1 Tests/CUDAEmulator/emu_selftest.cpp -ldl -o /tmp/emu_selftest
//   /tmp/emu_selftest /tmp/emu_kernels /tmp/emu_selftest_kernels
// Exit status 0 when every check passes. A unit that is missing from the kernel directory is skipped.
#include <dlfcn.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

extern "C" {
typedef struct { unsigned x, y, z; } nd_dim3;
typedef void (*nd_emu_launch_fn)(void **params, nd_dim3 grid, nd_dim3 block, unsigned shared_bytes);
typedef struct { const char *name; nd_emu_launch_fn launch; } nd_emu_kernel;
typedef struct { unsigned count; unsigned sizes[32]; } nd_emu_kernel_args_t;
}

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ND_SELFTEST_ASAN 1
#endif
#endif
#ifndef ND_SELFTEST_ASAN
#define ND_SELFTEST_ASAN 0
#endif

static const float kInf = std::numeric_limits<float>::infinity();
static const float kNaN = std::numeric_limits<float>::quiet_NaN();

// ---------------------------------------------------------------------------------------------
// Units and launches

struct Unit {
    std::string name;
    void *handle = nullptr;
    std::map<std::string, nd_emu_launch_fn> kernels;
    std::map<std::string, std::vector<unsigned>> arg_sizes;   // from nd_emu_kernel_args
    explicit operator bool() const { return handle != nullptr; }
    nd_emu_launch_fn find(const char *kernel) const {
        auto it = kernels.find(kernel);
        if (it == kernels.end()) {
            fprintf(stderr, "FATAL: kernel %s not in unit %s\n", kernel, name.c_str());
            exit(2);
        }
        return it->second;
    }
};

static Unit open_unit(const std::string &dir, const std::string &name) {
    Unit u;
    u.name = name;
    std::string path = dir + "/" + name + ".so";
    if (access(path.c_str(), R_OK) != 0) {
        printf("  (skipping %s: %s not found)\n", name.c_str(), path.c_str());
        return u;
    }
    u.handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!u.handle) {
        fprintf(stderr, "FATAL: dlopen %s: %s\n", path.c_str(), dlerror());
        exit(2);
    }
    int *count = (int *)dlsym(u.handle, "nd_emu_kernel_count");
    const nd_emu_kernel *table = (const nd_emu_kernel *)dlsym(u.handle, "nd_emu_kernels");
    if (!count || !table) {
        fprintf(stderr, "FATAL: %s lacks nd_emu_kernel_count / nd_emu_kernels\n", path.c_str());
        exit(2);
    }
    const nd_emu_kernel_args_t *args = (const nd_emu_kernel_args_t *)dlsym(u.handle, "nd_emu_kernel_args");
    for (int i = 0; i < *count; i++) {
        u.kernels[table[i].name] = table[i].launch;
        if (args) u.arg_sizes[table[i].name] = std::vector<unsigned>(args[i].sizes, args[i].sizes + args[i].count);
    }
    return u;
}

template <class... A> static void launch(const Unit &u, const char *kernel, nd_dim3 grid, nd_dim3 block, A... args) {
    void *params[] = {(void *)&args..., nullptr};
    u.find(kernel)(params, grid, block, 0);
}
static nd_dim3 D3(unsigned x, unsigned y = 1, unsigned z = 1) { return nd_dim3{x, y, z}; }
static nd_dim3 warp_grid(long items) { return D3((unsigned)std::max(1L, std::min((items + 7) / 8, 1L << 20))); }
static nd_dim3 element_grid(long n) { return D3((unsigned)std::max(1L, std::min((n + 255) / 256, 262140L))); }

// ---------------------------------------------------------------------------------------------
// Reporting

static int g_failures = 0, g_checks = 0;
static double g_worst_rel = 0;

// Error of got against want: |got − want| / max(1, |want|); equal infinities and NaN/NaN count as 0.
static double err_of(double got, double want) {
    if (std::isnan(want) || std::isnan(got)) return std::isnan(want) && std::isnan(got) ? 0.0 : INFINITY;
    if (std::isinf(want) || std::isinf(got)) return got == want ? 0.0 : INFINITY;
    return std::fabs(got - want) / std::max(1.0, std::fabs(want));
}

template <class G, class W> static double max_err(const G *got, const W *want, size_t n, size_t *worst = nullptr) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double e = err_of((double)got[i], (double)want[i]);
        if (e > m || (std::isnan(e))) {
            m = e;
            if (worst) *worst = i;
        }
    }
    return m;
}

static void report(const std::string &what, double err, double tol, const std::string &detail = "") {
    g_checks++;
    bool ok = err <= tol;
    if (!ok) g_failures++;
    if (std::isfinite(err) && tol > 0) g_worst_rel = std::max(g_worst_rel, err);
    printf("  %-4s %-66s max err %-10.3g (tol %.0e)%s%s\n", ok ? "ok" : "FAIL", what.c_str(), err, tol, detail.empty() ? "" : "  ",
           detail.c_str());
}
template <class G, class W> static void check(const std::string &what, const std::vector<G> &got, const std::vector<W> &want, double tol) {
    size_t worst = 0;
    double e = got.size() == want.size() ? max_err(got.data(), want.data(), got.size(), &worst) : INFINITY;
    char d[160] = "";
    if (e > tol && worst < got.size())
        snprintf(d, sizeof d, "[at %zu: got %.9g want %.9g]", worst, (double)got[worst], (double)want[worst]);
    report(what, e, tol, d);
}
static void check_true(const std::string &what, bool ok, const std::string &detail = "") { report(what, ok ? 0 : 1, 0, detail); }

static std::mt19937 rng(1234);

// Sets NANODECODER_EMU_SCHEDULE for a scope, restoring the caller's setting after.
struct ScopedSchedule {
    std::string saved;
    bool had;
    explicit ScopedSchedule(const char *s) {
        const char *v = getenv("NANODECODER_EMU_SCHEDULE");
        had = v != nullptr;
        if (had) saved = v;
        setenv("NANODECODER_EMU_SCHEDULE", s, 1);
    }
    ~ScopedSchedule() {
        if (had) setenv("NANODECODER_EMU_SCHEDULE", saved.c_str(), 1);
        else unsetenv("NANODECODER_EMU_SCHEDULE");
    }
};
static std::vector<float> randn(size_t n, float scale = 1.0f) {
    std::normal_distribution<float> d(0.0f, scale);
    std::vector<float> v(n);
    for (float &x : v) x = d(rng);
    return v;
}

// ---------------------------------------------------------------------------------------------
// engine_rows.cu

static void test_engine_rows(const Unit &u) {
    printf("engine_rows.cu\n");
    // nd_reduce_rows: sum and max over rows, with splits.
    {
        long rows = 37, cols = 1000;
        auto x = randn(rows * cols);
        for (long c = 0; c < cols; c++) x[5 * cols + c] = -kInf;   // a row of −inf: max −inf
        for (int op = 0; op < 2; op++)
            for (long splits : {1L, 3L}) {
                std::vector<float> out(rows * splits);
                launch(u, "nd_reduce_rows", warp_grid(rows * splits), D3(256), x.data(), out.data(), (long long)rows, (long long)cols,
                       (long long)splits, op);
                std::vector<double> want(rows * splits);
                long chunk = (cols + splits - 1) / splits;
                for (long r = 0; r < rows; r++)
                    for (long p = 0; p < splits; p++) {
                        double acc = op == 0 ? 0.0 : -INFINITY;
                        for (long c = p * chunk; c < std::min(cols, (p + 1) * chunk); c++)
                            acc = op == 0 ? acc + x[r * cols + c] : std::max(acc, (double)x[r * cols + c]);
                        want[r * splits + p] = acc;
                    }
                if (op == 0) want[5 * splits] = -INFINITY;   // Σ of −inf
                if (op == 0) for (long p = 0; p < splits; p++) want[5 * splits + p] = -INFINITY;
                check("nd_reduce_rows op " + std::to_string(op) + " splits " + std::to_string(splits) + " (37x1000)", out, want, 1e-5);
            }
    }
    // nd_reduce_axis
    {
        long outer = 3, axis = 50, inner = 7;
        auto x = randn(outer * axis * inner);
        for (long splits : {1L, 4L}) {
            std::vector<float> out(outer * splits * inner);
            launch(u, "nd_reduce_axis", element_grid(outer * splits * inner), D3(256), x.data(), out.data(), (long long)outer, (long long)axis,
                   (long long)inner, (long long)splits, 0);
            std::vector<double> want(out.size());
            long chunk = (axis + splits - 1) / splits;
            for (long o = 0; o < outer; o++)
                for (long p = 0; p < splits; p++)
                    for (long i = 0; i < inner; i++) {
                        double acc = 0;
                        for (long j = p * chunk; j < std::min(axis, (p + 1) * chunk); j++) acc += x[(o * axis + j) * inner + i];
                        want[(o * splits + p) * inner + i] = acc;
                    }
            check("nd_reduce_axis sum splits " + std::to_string(splits) + " (3x50x7)", out, want, 1e-5);
        }
    }
    // nd_softmax_forward / backward (cols not a multiple of 32, a row with −inf entries)
    {
        long rows = 50, cols = 300;
        auto x = randn(rows * cols, 3.0f);
        for (long c = 0; c < cols; c += 3) x[7 * cols + c] = -kInf;
        for (int lg = 0; lg < 2; lg++) {
            std::vector<float> y(rows * cols);
            launch(u, "nd_softmax_forward", warp_grid(rows), D3(256), x.data(), y.data(), (long long)rows, (long long)cols, lg);
            std::vector<double> want(rows * cols);
            for (long r = 0; r < rows; r++) {
                double m = -INFINITY, s = 0;
                for (long c = 0; c < cols; c++) m = std::max(m, (double)x[r * cols + c]);
                for (long c = 0; c < cols; c++) s += std::exp((double)x[r * cols + c] - m);
                for (long c = 0; c < cols; c++)
                    want[r * cols + c] = lg ? x[r * cols + c] - (m + std::log(s)) : std::exp(x[r * cols + c] - m) / s;
            }
            check(std::string("nd_softmax_forward ") + (lg ? "log " : "") + "(50x300, -inf entries)", y, want, 2e-6);
            auto dy = randn(rows * cols);
            std::vector<float> dx(rows * cols);
            launch(u, "nd_softmax_backward", warp_grid(rows), D3(256), y.data(), dy.data(), dx.data(), (long long)rows, (long long)cols, lg);
            std::vector<double> wdx(rows * cols);
            for (long r = 0; r < rows; r++) {
                double acc = 0;
                for (long c = 0; c < cols; c++) acc += lg ? dy[r * cols + c] : (double)dy[r * cols + c] * y[r * cols + c];
                for (long c = 0; c < cols; c++) {
                    long i = r * cols + c;
                    wdx[i] = lg ? dy[i] - std::exp((double)y[i]) * acc : y[i] * (dy[i] - acc);
                }
            }
            check(std::string("nd_softmax_backward ") + (lg ? "log" : ""), dx, wdx, 1e-5);
        }
    }
    // nd_cumsum_scan (__shfl_up_sync + __shfl_sync) and nd_cumsum_columns
    {
        long outer = 2, axis = 100, inner = 3;
        auto x = randn(outer * axis * inner);
        for (int rev = 0; rev < 2; rev++) {
            std::vector<double> want(x.size());
            for (long o = 0; o < outer; o++)
                for (long i = 0; i < inner; i++) {
                    double acc = 0;
                    for (long jj = 0; jj < axis; jj++) {
                        long j = rev ? axis - 1 - jj : jj, at = (o * axis + j) * inner + i;
                        acc += x[at];
                        want[at] = acc;
                    }
                }
            std::vector<float> out(x.size()), out2(x.size());
            launch(u, "nd_cumsum_scan", warp_grid(outer * inner), D3(256), x.data(), out.data(), (long long)outer, (long long)axis,
                   (long long)inner, rev);
            check(std::string("nd_cumsum_scan ") + (rev ? "reverse " : "") + "(2x100x3)", out, want, 1e-5);
            launch(u, "nd_cumsum_columns", element_grid(outer * inner), D3(256), x.data(), out2.data(), (long long)outer, (long long)axis,
                   (long long)inner, rev);
            check(std::string("nd_cumsum_columns ") + (rev ? "reverse" : ""), out2, want, 1e-5);
        }
    }
    // LayerNorm / RMSNorm forward, backward dx and parameter gradients
    {
        long rows = 20, cols = 100;
        float eps = 1e-5f;
        auto x = randn(rows * cols, 2.0f), w = randn(cols), b = randn(cols), dy = randn(rows * cols);
        for (int withParams = 0; withParams < 2; withParams++) {
            const float *wp = withParams ? w.data() : nullptr, *bp = withParams ? b.data() : nullptr;
            std::vector<float> y(rows * cols), mean(rows), rstd(rows);
            launch(u, "nd_layernorm_forward", warp_grid(rows), D3(256), x.data(), wp, bp, y.data(), mean.data(), rstd.data(),
                   (long long)rows, (long long)cols, eps);
            std::vector<double> wy(rows * cols), wm(rows), wr(rows);
            for (long r = 0; r < rows; r++) {
                double m = 0, v = 0;
                for (long c = 0; c < cols; c++) m += x[r * cols + c];
                m /= cols;
                for (long c = 0; c < cols; c++) v += (x[r * cols + c] - m) * (x[r * cols + c] - m);
                double rs = 1 / std::sqrt(v / cols + eps);
                wm[r] = m; wr[r] = rs;
                for (long c = 0; c < cols; c++) wy[r * cols + c] = (x[r * cols + c] - m) * rs * (wp ? wp[c] : 1) + (bp ? bp[c] : 0);
            }
            std::string tag = withParams ? " (w, b)" : " (no w, b)";
            check("nd_layernorm_forward y" + tag, y, wy, 1e-5);
            check("nd_layernorm_forward mean, rstd" + tag, mean, wm, 1e-5);
            check("nd_layernorm_forward rstd" + tag, rstd, wr, 1e-5);
        }
        for (int rms = 0; rms < 2; rms++) {
            std::vector<float> mean(rows), rstd(rows);
            for (long r = 0; r < rows; r++) {
                double m = 0, v = 0;
                for (long c = 0; c < cols; c++) m += x[r * cols + c];
                m = rms ? 0 : m / cols;
                for (long c = 0; c < cols; c++) v += (x[r * cols + c] - m) * (x[r * cols + c] - m);
                mean[r] = (float)m; rstd[r] = (float)(1 / std::sqrt(v / cols + eps));
            }
            if (rms) {
                std::vector<float> y(rows * cols), rs(rows);
                launch(u, "nd_rmsnorm_forward", warp_grid(rows), D3(256), x.data(), w.data(), y.data(), rs.data(), (long long)rows,
                       (long long)cols, eps);
                std::vector<double> wy(rows * cols);
                for (long r = 0; r < rows; r++)
                    for (long c = 0; c < cols; c++) wy[r * cols + c] = (double)x[r * cols + c] * rstd[r] * w[c];
                check("nd_rmsnorm_forward", y, wy, 1e-5);
                check("nd_rmsnorm_forward rstd", rs, rstd, 1e-5);
            }
            std::vector<float> dx(rows * cols);
            const float *mp = rms ? nullptr : mean.data();
            launch(u, "nd_norm_backward_dx", warp_grid(rows), D3(256), x.data(), w.data(), mp, rstd.data(), dy.data(), dx.data(),
                   (long long)rows, (long long)cols);
            std::vector<double> wdx(rows * cols);
            for (long r = 0; r < rows; r++) {
                double sg = 0, sgx = 0, m = mp ? mean[r] : 0, rs = rstd[r];
                for (long c = 0; c < cols; c++) {
                    double g = (double)dy[r * cols + c] * w[c];
                    sg += g; sgx += g * (x[r * cols + c] - m) * rs;
                }
                double mg = mp ? sg / cols : 0, mgx = sgx / cols;
                for (long c = 0; c < cols; c++)
                    wdx[r * cols + c] = rs * ((double)dy[r * cols + c] * w[c] - mg - (x[r * cols + c] - m) * rs * mgx);
            }
            check(std::string("nd_norm_backward_dx ") + (rms ? "(RMSNorm)" : "(LayerNorm)"), dx, wdx, 2e-5);
        }
        // nd_norm_backward_params over 3 parts of the rows, columns over grid.x
        long prow = 70, pcols = 300, splits = 3;
        auto px = randn(prow * pcols), pdy = randn(prow * pcols), pm = randn(prow), prs = randn(prow);
        std::vector<float> dw(splits * pcols), db(splits * pcols);
        launch(u, "nd_norm_backward_params", D3((unsigned)((pcols + 255) / 256), (unsigned)splits), D3(256), px.data(), pm.data(), prs.data(),
               pdy.data(), dw.data(), db.data(), (long long)prow, (long long)pcols, (long long)splits);
        std::vector<double> wdw(dw.size()), wdb(db.size());
        long chunk = (prow + splits - 1) / splits;
        for (long p = 0; p < splits; p++)
            for (long c = 0; c < pcols; c++)
                for (long r = p * chunk; r < std::min(prow, (p + 1) * chunk); r++) {
                    wdw[p * pcols + c] += (double)pdy[r * pcols + c] * ((px[r * pcols + c] - pm[r]) * prs[r]);
                    wdb[p * pcols + c] += pdy[r * pcols + c];
                }
        check("nd_norm_backward_params dw (70x300, 3 parts)", dw, wdw, 1e-5);
        check("nd_norm_backward_params db", db, wdb, 1e-5);
    }
    // Cross-entropy forward / backward (ignored rows, −inf logits)
    {
        long rows = 40, classes = 500;
        int ignore = -100;
        auto logits = randn(rows * classes, 2.0f);
        std::vector<int> t(rows);
        for (long r = 0; r < rows; r++) t[r] = r % 7 == 3 ? ignore : (int)(rng() % classes);
        for (long c = 0; c < classes; c++)
            if (c != t[1]) logits[1 * classes + c] = -kInf;   // only the target is finite: loss 0
        std::vector<float> losses(rows), lse(rows);
        launch(u, "nd_cross_entropy_forward", warp_grid(rows), D3(256), logits.data(), t.data(), losses.data(), lse.data(), (long long)rows,
               (long long)classes, ignore);
        std::vector<double> wl(rows), wlse(rows);
        for (long r = 0; r < rows; r++) {
            double m = -INFINITY, s = 0;
            for (long c = 0; c < classes; c++) m = std::max(m, (double)logits[r * classes + c]);
            for (long c = 0; c < classes; c++) s += std::exp(logits[r * classes + c] - m);
            wlse[r] = m + std::log(s);
            wl[r] = t[r] == ignore ? 0 : wlse[r] - logits[r * classes + t[r]];
        }
        check("nd_cross_entropy_forward losses (40x500)", losses, wl, 2e-6);
        check("nd_cross_entropy_forward lse", lse, wlse, 2e-6);
        std::vector<float> dl(rows * classes);
        float scale = 1.0f / rows;
        std::vector<float> scaleBy = {0.5f};   // the upstream gradient, read by the kernel
        launch(u, "nd_cross_entropy_backward", D3((unsigned)((classes + 255) / 256), (unsigned)rows), D3(256), logits.data(), t.data(),
               lse.data(), dl.data(), scale, scaleBy.data(), (long long)rows, (long long)classes, ignore);
        scale *= 0.5f;
        std::vector<double> wdl(rows * classes);
        for (long r = 0; r < rows; r++)
            for (long c = 0; c < classes; c++)
                wdl[r * classes + c] = t[r] == ignore ? 0 : std::exp(logits[r * classes + c] - wlse[r]) * scale - (c == t[r] ? scale : 0);
        check("nd_cross_entropy_backward", dl, wdl, 1e-6);
    }
    // Top-k with ties, one chunk (k = 5) and two chunks (k = 40)
    {
        long rows = 10, cols = 300;
        std::vector<float> x(rows * cols);
        for (float &v : x) v = (float)(rng() % 50) * 0.5f;   // many ties
        for (long k : {5L, 40L}) {
            std::vector<float> vals(rows * k);
            std::vector<int> idx(rows * k);
            launch(u, "nd_topk", warp_grid(rows), D3(256), x.data(), vals.data(), idx.data(), (long long)rows, (long long)cols, (long long)k);
            bool ok = true;
            for (long r = 0; r < rows && ok; r++) {
                std::vector<int> order(cols);
                for (int c = 0; c < cols; c++) order[c] = c;
                std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return x[r * cols + a] > x[r * cols + b]; });
                for (long i = 0; i < k; i++)
                    if (idx[r * k + i] != order[i] || vals[r * k + i] != x[r * cols + order[i]]) ok = false;
            }
            check_true("nd_topk k=" + std::to_string(k) + " (10x300, ties: lower index first)", ok);
        }
    }
    // Read-back reductions: Σx² (double partials, shared memory + barrier) and the int range
    for (long n : {5000L, 70000L}) {
        auto x = randn(n);
        long blocks = std::max(1L, std::min((n + 255) / 256, 1024L));
        std::vector<double> partial(blocks);
        launch(u, "nd_sum_of_squares", D3((unsigned)blocks), D3(256), x.data(), partial.data(), (long long)n);
        double got = 0, want = 0;
        for (double p : partial) got += p;
        for (float v : x) want += (double)v * v;
        report("nd_sum_of_squares n=" + std::to_string(n) + " (" + std::to_string(blocks) + " blocks)", err_of(got, want), 1e-12);
        std::vector<int> ix(n);
        for (int &v : ix) v = (int)(rng() % 100000) - 30000;
        std::vector<int> pr(2 * blocks);
        launch(u, "nd_index_range", D3((unsigned)blocks), D3(256), ix.data(), pr.data(), (long long)n);
        int lo = INT32_MAX, hi = INT32_MIN;
        for (long b = 0; b < blocks; b++) { lo = std::min(lo, pr[2 * b]); hi = std::max(hi, pr[2 * b + 1]); }
        check_true("nd_index_range n=" + std::to_string(n), lo == *std::min_element(ix.begin(), ix.end()) && hi == *std::max_element(ix.begin(), ix.end()));
    }
}

// ---------------------------------------------------------------------------------------------
// engine_attention.cu

struct AttnParams {
    long long batchHeads, heads, tq, tk, d;
    unsigned long long seed, offset;
    float scale, scaleLog2, dropout, keepScale;
    int causal, packed;
};
static_assert(sizeof(AttnParams) == 80, "AttnParams is 80 bytes");

struct Philox { unsigned w[4]; };
static Philox philox(unsigned long long counter, unsigned long long seed) {
    unsigned c0 = (unsigned)counter, c1 = (unsigned)(counter >> 32), c2 = 0, c3 = 0, k0 = (unsigned)seed, k1 = (unsigned)(seed >> 32);
    for (int r = 0; r < 10; r++) {
        unsigned long long p0 = 0xD2511F53ull * c0, p1 = 0xCD9E8D57ull * c2;
        unsigned n0 = (unsigned)(p1 >> 32) ^ c1 ^ k0, n1 = (unsigned)p1, n2 = (unsigned)(p0 >> 32) ^ c3 ^ k1, n3 = (unsigned)p0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += 0x9E3779B9u; k1 += 0xBB67AE85u;
    }
    return Philox{{c0, c1, c2, c3}};
}

struct AttnCase { int B, H, tq, tk, D; bool causal, packed; float dropout; };

// Reference attention in double: forward (out, lse) and backward (dq, dk, dv) for the layout of
// nd_attn_head: unpacked q (BH, tq, D), k, v (BH, tk, D); packed qkv (B, T, 3, H, D), out (B, T, H, D).
struct AttnRef {
    AttnCase c;
    AttnParams p;
    long qOff(long h, long i) const { return c.packed ? (h / c.H) * c.tq * 3L * c.H * c.D + (h % c.H) * c.D + i * 3L * c.H * c.D : (h * c.tq + i) * c.D; }
    long kOff(long h, long j) const { return c.packed ? qOff(h, j) + (long)c.H * c.D : (h * c.tk + j) * c.D; }
    long vOff(long h, long j) const { return c.packed ? qOff(h, j) + 2L * c.H * c.D : (h * c.tk + j) * c.D; }
    long oOff(long h, long i) const { return c.packed ? (h / c.H) * c.tq * (long)c.H * c.D + (h % c.H) * c.D + i * (long)c.H * c.D : (h * c.tq + i) * c.D; }
    bool sees(long i, long j) const { return !c.causal || j <= (long)(c.tk - c.tq) + i; }
    double keep(long h, long i, long j) const {
        if (c.dropout <= 0) return 1.0;
        unsigned long long index = p.offset + (unsigned long long)((h * c.tq + i) * c.tk + j);
        unsigned bits = philox(index >> 2, p.seed).w[index & 3];
        float u = 1.0f - (float)((bits >> 8) + 1) * (1.0f / 16777216.0f);
        return u < c.dropout ? 0.0 : p.keepScale;
    }
};

static void test_attention_case(const Unit &u, const AttnCase &c) {
    AttnRef ref{c, {}};
    AttnParams &p = ref.p;
    long BH = (long)c.B * c.H;
    p.batchHeads = BH; p.heads = c.H; p.tq = c.tq; p.tk = c.tk; p.d = c.D;
    p.seed = 0x1234abcdull; p.offset = 77;
    p.scale = 1.0f / std::sqrt((float)c.D);
    p.scaleLog2 = p.scale * 1.44269504f;
    p.dropout = c.dropout;
    p.keepScale = c.dropout > 0 ? 1 / (1 - c.dropout) : 1;
    p.causal = c.causal; p.packed = c.packed;
    if (c.packed && c.tq != c.tk) { fprintf(stderr, "bad case\n"); exit(2); }
    long qkvSize = c.packed ? (long)c.B * c.tq * 3 * c.H * c.D : 0;
    long qSize = c.packed ? qkvSize : BH * c.tq * c.D, kSize = c.packed ? qkvSize : BH * c.tk * c.D;
    long oSize = BH * c.tq * c.D;
    std::vector<float> q = randn(qSize), k = c.packed ? std::vector<float>() : randn(kSize), v = c.packed ? std::vector<float>() : randn(kSize);
    const float *qp = q.data(), *kp = c.packed ? q.data() : k.data(), *vp = c.packed ? q.data() : v.data();
    std::vector<float> out(oSize, kNaN), lse(BH * c.tq, kNaN);
    const char *variant = c.D <= 64 ? "d64" : c.D <= 128 ? "d128" : "d256";
    unsigned tilesQ = (unsigned)((c.tq + 63) / 64), tilesK = (unsigned)((c.tk + 63) / 64);
    auto t0 = std::chrono::steady_clock::now();
    launch(u, (std::string("nd_attn_forward_") + variant).c_str(), D3(tilesQ * (unsigned)BH), D3(256), qp, kp, vp, out.data(), lse.data(), p);
    double fwdMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();

    // Reference forward
    std::vector<double> wout(oSize, 0), wlse(BH * c.tq), P((size_t)BH * c.tq * c.tk, 0.0);
    for (long h = 0; h < BH; h++)
        for (long i = 0; i < c.tq; i++) {
            double m = -INFINITY;
            std::vector<double> s(c.tk);
            for (long j = 0; j < c.tk; j++) {
                if (!ref.sees(i, j)) continue;
                double dot = 0;
                for (long d = 0; d < c.D; d++) dot += (double)qp[ref.qOff(h, i) + d] * kp[ref.kOff(h, j) + d];
                s[j] = dot * p.scale;
                m = std::max(m, s[j]);
            }
            double sum = 0;
            for (long j = 0; j < c.tk; j++)
                if (ref.sees(i, j)) sum += std::exp(s[j] - m);
            wlse[h * c.tq + i] = m + std::log(sum);
            for (long j = 0; j < c.tk; j++) {
                if (!ref.sees(i, j)) continue;
                double pr = std::exp(s[j] - m) / sum;
                P[(h * c.tq + i) * c.tk + j] = pr;
                double z = ref.keep(h, i, j);
                for (long d = 0; d < c.D; d++) wout[ref.oOff(h, i) + d] += pr * z * vp[ref.vOff(h, j) + d];
            }
        }
    char tag[160];
    snprintf(tag, sizeof tag, "B%d H%d tq%d tk%d D%d%s%s%s", c.B, c.H, c.tq, c.tk, c.D, c.causal ? " causal" : "", c.packed ? " packed" : "",
             c.dropout > 0 ? " dropout" : "");
    check(std::string("nd_attn_forward_") + variant + " out (" + tag + ")", out, wout, 2e-5);
    check(std::string("nd_attn_forward_") + variant + " lse", lse, wlse, 2e-5);

    // Backward: delta, dq, dk/dv
    std::vector<float> dout = randn(oSize), delta(BH * c.tq, kNaN);
    launch(u, "nd_attn_backward_delta", D3((unsigned)((BH * c.tq + 7) / 8)), D3(256), out.data(), dout.data(), delta.data(), p);
    std::vector<double> wdelta(BH * c.tq);
    for (long h = 0; h < BH; h++)
        for (long i = 0; i < c.tq; i++) {
            double a = 0;
            for (long d = 0; d < c.D; d++) a += (double)out[ref.oOff(h, i) + d] * dout[ref.oOff(h, i) + d];
            wdelta[h * c.tq + i] = a;
        }
    check("nd_attn_backward_delta", delta, wdelta, 2e-5);
    std::vector<float> dq(qSize, c.packed ? kNaN : kNaN), dk(c.packed ? 0 : kSize, kNaN), dv(c.packed ? 0 : kSize, kNaN);
    float *dqp = dq.data(), *dkp = c.packed ? dq.data() : dk.data(), *dvp = c.packed ? dq.data() : dv.data();
    launch(u, (std::string("nd_attn_backward_dq_") + variant).c_str(), D3(tilesQ * (unsigned)BH), D3(256), qp, kp, vp, (const float *)dout.data(),
           (const float *)lse.data(), (const float *)delta.data(), dqp, p);
    launch(u, (std::string("nd_attn_backward_dkdv_") + variant).c_str(), D3(tilesK * (unsigned)BH), D3(256), qp, kp, vp,
           (const float *)dout.data(), (const float *)lse.data(), (const float *)delta.data(), dkp, dvp, p);
    std::vector<double> wdq(qSize, 0), wdk(c.packed ? qSize : kSize, 0), wdv(c.packed ? qSize : kSize, 0);
    if (c.packed) {   // the packed tensor holds all three: start from NaN-free zeros only where written
        std::fill(wdq.begin(), wdq.end(), 0.0);
    }
    for (long h = 0; h < BH; h++)
        for (long i = 0; i < c.tq; i++)
            for (long j = 0; j < c.tk; j++) {
                if (!ref.sees(i, j)) continue;
                double pr = P[(h * c.tq + i) * c.tk + j], z = ref.keep(h, i, j), dp = 0;
                for (long d = 0; d < c.D; d++) dp += (double)dout[ref.oOff(h, i) + d] * vp[ref.vOff(h, j) + d];
                double ds = pr * (z * dp - wdelta[h * c.tq + i]) * p.scale;
                for (long d = 0; d < c.D; d++) {
                    wdq[ref.qOff(h, i) + d] += ds * kp[ref.kOff(h, j) + d];
                    (c.packed ? wdq : wdk)[ref.kOff(h, j) + d] += ds * qp[ref.qOff(h, i) + d];
                    (c.packed ? wdq : wdv)[ref.vOff(h, j) + d] += pr * z * dout[ref.oOff(h, i) + d];
                }
            }
    if (c.packed) {
        check("nd_attn_backward dq/dk/dv (packed dqkv)", dq, wdq, 5e-5);
    } else {
        check("nd_attn_backward_dq", dq, wdq, 5e-5);
        check("nd_attn_backward_dkdv dk", dk, wdk, 5e-5);
        check("nd_attn_backward_dkdv dv", dv, wdv, 5e-5);
    }
    (void)fwdMs;
}

static void test_engine_attention(const Unit &u, bool extended) {
    printf("engine_attention.cu\n");
    {
        auto it = u.arg_sizes.find("nd_attn_backward_dkdv_d128");
        check_true("nd_emu_kernel_args: nd_attn_backward_dkdv_d128 takes 8 pointers and an 80-byte AttnParams",
                   it != u.arg_sizes.end() && it->second == std::vector<unsigned>{8, 8, 8, 8, 8, 8, 8, 8, 80});
    }
    if (extended) {   // tile and head-size edges: Tq, Tk around multiples of 64, D around 64/128/256
        for (int D : {1, 31, 64, 65, 128, 129, 256})
            for (int tq : {1, 63, 64, 65, 130})
                for (int tk : {1, 64, 65, 130})
                    for (int mode = 0; mode < 4; mode++) {
                        bool causal = mode & 1, packed = mode == 2, drop = mode == 3;
                        if (causal && tq > tk) continue;   // AttentionShape: Tq <= Tk
                        if (packed && tq != tk) continue;
                        test_attention_case(u, AttnCase{packed ? 2 : 1, 2, tq, tk, D, causal || packed, packed, drop ? 0.3f : 0.0f});
                    }
    }
    const AttnCase cases[] = {
        {1, 2, 70, 70, 48, true, false, 0.0f},     // a partial second tile, D < 64
        {2, 1, 33, 100, 64, true, false, 0.0f},    // causal with more keys than queries (shift 67)
        {1, 1, 65, 40, 20, false, false, 0.0f},    // non-causal, tq > tk
        {2, 2, 40, 40, 32, true, true, 0.0f},      // packed qkv
        {1, 2, 50, 50, 16, true, false, 0.2f},     // dropout
        {1, 1, 30, 30, 80, true, false, 0.0f},     // d128
        {1, 1, 20, 20, 160, false, false, 0.1f},   // d256 with dropout
    };
    for (const AttnCase &c : cases) test_attention_case(u, c);
}

// ---------------------------------------------------------------------------------------------
// attention.cu, rows.cu, optimizer.cu, elementwise.cu (the hand-written GPT kernels)

static void test_attention_legacy(const Unit &u) {
    printf("attention.cu\n");
    int BH = 3, T = 37, D = 40;
    float scale = 1.0f / std::sqrt((float)D);
    auto q = randn(BH * T * D), k = randn(BH * T * D), v = randn(BH * T * D);
    std::vector<float> out(BH * T * D), lse(BH * T);
    launch(u, "attention_forward", D3((unsigned)((T + 3) / 4), (unsigned)BH), D3(128), q.data(), k.data(), v.data(), out.data(), lse.data(), 1, T,
           D, scale);
    std::vector<double> wout(out.size(), 0), wlse(lse.size());
    for (int h = 0; h < BH; h++)
        for (int i = 0; i < T; i++) {
            std::vector<double> s(i + 1);
            double m = -INFINITY, sum = 0;
            for (int j = 0; j <= i; j++) {
                double dot = 0;
                for (int d = 0; d < D; d++) dot += (double)q[(h * T + i) * D + d] * scale * k[(h * T + j) * D + d];
                s[j] = dot; m = std::max(m, dot);
            }
            for (int j = 0; j <= i; j++) sum += std::exp(s[j] - m);
            for (int j = 0; j <= i; j++)
                for (int d = 0; d < D; d++) wout[(h * T + i) * D + d] += std::exp(s[j] - m) / sum * v[(h * T + j) * D + d];
            wlse[h * T + i] = m + std::log(sum);
        }
    check("attention_forward out (BH 3, T 37, D 40, causal)", out, wout, 2e-5);
    check("attention_forward lse", lse, wlse, 2e-5);
}

static void test_rows_legacy(const Unit &u) {
    printf("rows.cu\n");
    long rows = 19, cols = 77;
    float eps = 1e-5f;
    auto x = randn(rows * cols), res = randn(rows * cols), w = randn(cols), b = randn(cols);
    std::vector<float> resOut(rows * cols), y(rows * cols), mean(rows), rstd(rows);
    launch(u, "layernorm_forward", D3((unsigned)((rows + 7) / 8)), D3(256), x.data(), res.data(), resOut.data(), w.data(), b.data(), y.data(),
           mean.data(), rstd.data(), rows, (int)cols, eps);
    std::vector<double> wy(rows * cols), wres(rows * cols);
    for (long r = 0; r < rows; r++) {
        double m = 0, var = 0;
        for (long c = 0; c < cols; c++) { wres[r * cols + c] = x[r * cols + c] + res[r * cols + c]; m += (float)wres[r * cols + c]; }
        m /= cols;
        for (long c = 0; c < cols; c++) var += ((float)wres[r * cols + c] - m) * ((float)wres[r * cols + c] - m);
        double rs = 1 / std::sqrt(var / cols + eps);
        for (long c = 0; c < cols; c++) wy[r * cols + c] = ((float)wres[r * cols + c] - m) * rs * w[c] + b[c];
    }
    check("layernorm_forward residualOut (19x77)", resOut, wres, 1e-6);
    check("layernorm_forward y", y, wy, 1e-5);
    long classes = 333;
    auto logits = randn(rows * classes);
    std::vector<int> t(rows);
    for (long r = 0; r < rows; r++) t[r] = r == 4 ? -1 : (int)(rng() % classes);
    std::vector<float> losses(rows), lse(rows);
    launch(u, "cross_entropy_forward", D3((unsigned)((rows + 7) / 8)), D3(256), logits.data(), t.data(), losses.data(), lse.data(), rows, (int)classes, -1);
    std::vector<double> wl(rows);
    for (long r = 0; r < rows; r++) {
        double m = -INFINITY, s = 0;
        for (long c = 0; c < classes; c++) m = std::max(m, (double)logits[r * classes + c]);
        for (long c = 0; c < classes; c++) s += std::exp(logits[r * classes + c] - m);
        wl[r] = t[r] == -1 ? 0 : m + std::log(s) - logits[r * classes + t[r]];
    }
    check("cross_entropy_forward losses (19x333)", losses, wl, 2e-6);
}

static void test_optimizer(const Unit &u) {
    printf("optimizer.cu\n");
    long n = 20000;
    auto x = randn(n);
    float out = 0;
    launch(u, "sum_of_squares", D3((unsigned)std::min(1024L, (n + 255) / 256)), D3(256), x.data(), n, &out);
    double want = 0;
    for (float v : x) want += (double)v * v;
    report("sum_of_squares n=20000 (shared memory, barrier, float atomicAdd)", err_of(out, want), 1e-5);
    struct AdamWTensor { float *param; const float *grad; float *m; float *v; long n; float weightDecay; };
    std::vector<std::vector<float>> P, G, M, V;
    std::vector<AdamWTensor> ts;
    long sizes[] = {1000, 37, 5000};
    for (long s : sizes) { P.push_back(randn(s)); G.push_back(randn(s)); M.push_back(randn(s, 0.1f)); V.push_back(std::vector<float>(s, 0.01f)); }
    for (size_t i = 0; i < 3; i++) ts.push_back(AdamWTensor{P[i].data(), G[i].data(), M[i].data(), V[i].data(), sizes[i], i == 1 ? 0.0f : 0.1f});
    auto P0 = P, M0 = M, V0 = V;
    float lr = 1e-3f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, c1 = 0.1f, c2 = 0.001f, gs = 0.5f;
    launch(u, "adamw_multi_tensor", D3((unsigned)std::min(1024L, (5000L + 255) / 256), 3), D3(256), (const AdamWTensor *)ts.data(), lr, b1, b2, eps, c1,
           c2, gs);
    double e = 0;
    for (size_t t = 0; t < 3; t++)
        for (long i = 0; i < sizes[t]; i++) {
            float g = G[t][i] * gs, m = b1 * M0[t][i] + (1 - b1) * g, v = b2 * V0[t][i] + (1 - b2) * g * g;
            float p = P0[t][i] - lr * ((m / c1) / (sqrtf(v / c2) + eps) + ts[t].weightDecay * P0[t][i]);
            e = std::max({e, err_of(P[t][i], p), err_of(M[t][i], m), err_of(V[t][i], v)});
        }
    report("adamw_multi_tensor (3 tensors over grid.y, struct array)", e, 1e-6);
}

static void test_elementwise(const Unit &u) {
    printf("elementwise.cu\n");
    long n = 3000;
    auto x = randn(n, 100.0f);
    x[0] = kNaN; x[1] = kInf; x[2] = -kInf; x[3] = 3.3895314e38f; x[4] = 1e-40f;
    std::vector<uint16_t> bf(n);
    launch(u, "cast_f32_bf16", D3(12), D3(256), x.data(), bf.data(), n);
    long bad = 0;
    for (long i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, &x[i], 4);
        uint16_t want = std::isnan(x[i]) ? 0x7fff : (uint16_t)((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
        bad += bf[i] != want;
    }
    check_true("cast_f32_bf16 bits (RNE, NaN 0x7fff, overflow to inf)", bad == 0, std::to_string(bad) + " mismatches");
    std::vector<float> back(n);
    launch(u, "cast_bf16_f32", D3(12), D3(256), (const uint16_t *)bf.data(), back.data(), n);
    long bad2 = 0;
    for (long i = 0; i < n; i++) {
        uint32_t b = (uint32_t)bf[i] << 16, g;
        memcpy(&g, &back[i], 4);
        bad2 += g != b;
    }
    check_true("cast_bf16_f32 bits", bad2 == 0);
    // embedding_backward: atomics on repeated rows
    int rows = 50, dim = 70, vocab = 5;
    auto dout = randn(rows * dim);
    std::vector<int> ids(rows);
    for (int &i : ids) i = (int)(rng() % vocab);
    std::vector<float> dt(vocab * dim, 0.0f);
    std::vector<double> wdt(vocab * dim, 0.0);
    launch(u, "embedding_backward", D3((unsigned)rows), D3(64), dout.data(), ids.data(), dt.data(), dim);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < dim; c++) wdt[ids[r] * dim + c] += dout[r * dim + c];
    check("embedding_backward (repeated ids, float atomicAdd)", dt, wdt, 1e-5);
}

// ---------------------------------------------------------------------------------------------
// engine_pointwise.cu, engine_indexing.cu

struct NdStrides { int rank; int pad; long long shape[8]; long long s[3][8]; };

static void test_engine_pointwise(const Unit &u) {
    printf("engine_pointwise.cu\n");
    // nd_binary with broadcasting: a (4,1,5), b (1,3,5) -> out (4,3,5); NdStrides by value (456 bytes)
    {
        auto a = randn(20), b = randn(15);
        NdStrides p{};
        p.rank = 3;
        long long shape[3] = {4, 3, 5};
        for (int d = 0; d < 3; d++) p.shape[d] = shape[d];
        p.s[0][0] = 5; p.s[0][1] = 0; p.s[0][2] = 1;
        p.s[1][0] = 0; p.s[1][1] = 5; p.s[1][2] = 1;
        for (int op = 0; op < 4; op++) {
            std::vector<float> out(60);
            launch(u, "nd_binary", element_grid(60), D3(256), op, (const float *)a.data(), (const float *)b.data(), out.data(), 60LL, p);
            std::vector<double> want(60);
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 3; j++)
                    for (int k = 0; k < 5; k++) {
                        float x = a[i * 5 + k], y = b[j * 5 + k];
                        want[(i * 3 + j) * 5 + k] = op == 0 ? x + y : op == 1 ? x - y : op == 2 ? x * y : x / y;
                    }
            check("nd_binary op " + std::to_string(op) + " broadcast (4,1,5)x(1,3,5), NdStrides by value", out, want, 1e-6);
        }
    }
    // nd_cast f32 -> f16 -> f32 and f32 -> bf16
    {
        long n = 2000;
        auto x = randn(n, 1000.0f);
        x[0] = 65520.0f; x[1] = 65519.0f; x[2] = 5.9604645e-08f; x[3] = 2.9802322e-08f; x[4] = kNaN; x[5] = 1e-6f;
        std::vector<uint16_t> h(n);
        std::vector<float> back(n);
        launch(u, "nd_cast", element_grid(n), D3(256), (const void *)x.data(), 0, (void *)h.data(), 2, (long long)n);
        launch(u, "nd_cast", element_grid(n), D3(256), (const void *)h.data(), 2, (void *)back.data(), 0, (long long)n);
        std::vector<double> want(n);
        for (long i = 0; i < n; i++) want[i] = (double)(_Float16)x[i];
        check("nd_cast f32 -> f16 -> f32 (vs _Float16)", back, want, 0);
        check_true("nd_cast f32 -> f16 NaN is 0x7fff", h[4] == 0x7fff);
    }
    // nd_random: uniform, normal, truncated normal (erfinv), bernoulli
    {
        long n = 20000;
        std::vector<float> y(n);
        launch(u, "nd_random", element_grid(n), D3(256), y.data(), (long long)n, 2, 0.0f, 1.0f, -1.5f, 2.0f, 42ULL, 0ULL);
        double mean = 0, lo = 1e9, hi = -1e9;
        for (float v : y) { mean += v; lo = std::min(lo, (double)v); hi = std::max(hi, (double)v); }
        mean /= n;
        // mean of N(0,1) truncated to [-1.5, 2]: (φ(a) − φ(b)) / (Φ(b) − Φ(a))
        auto phi = [](double t) { return std::exp(-t * t / 2) / std::sqrt(2 * M_PI); };
        auto Phi = [](double t) { return 0.5 * std::erfc(-t / std::sqrt(2.0)); };
        double wmean = (phi(-1.5) - phi(2.0)) / (Phi(2.0) - Phi(-1.5));
        check_true("nd_random truncated normal in [-1.5, 2], mean " + std::to_string(mean) + " vs " + std::to_string(wmean),
                   lo >= -1.5 && hi <= 2.0 && std::fabs(mean - wmean) < 0.03);
        launch(u, "nd_random", element_grid(n), D3(256), y.data(), (long long)n, 1, 1.0f, 2.0f, 0.0f, 0.0f, 42ULL, 0ULL);
        double m1 = 0, m2 = 0;
        for (float v : y) { m1 += v; m2 += (double)v * v; }
        m1 /= n; m2 = std::sqrt(m2 / n - m1 * m1);
        check_true("nd_random normal(1, 2): mean " + std::to_string(m1) + " std " + std::to_string(m2), std::fabs(m1 - 1) < 0.05 && std::fabs(m2 - 2) < 0.05);
    }
}

static void test_engine_indexing(const Unit &u) {
    printf("engine_indexing.cu\n");
    long outer = 3, axis = 6, inner = 5, n = 10;
    auto src = randn(outer * n * inner);
    std::vector<int> index(n);
    for (int &i : index) i = (int)(rng() % axis);
    std::vector<float> out(outer * axis * inner, 1.0f);
    std::vector<double> want(out.size(), 1.0);
    launch(u, "nd_index_add", element_grid(outer * n * inner), D3(256), (const float *)src.data(), (const int *)index.data(), out.data(),
           (long long)outer, (long long)axis, (long long)inner, (long long)n);
    for (long o = 0; o < outer; o++)
        for (long j = 0; j < n; j++)
            for (long i = 0; i < inner; i++) want[(o * axis + index[j]) * inner + i] += src[(o * n + j) * inner + i];
    check("nd_index_add (repeated indices, atomics)", out, want, 1e-6);
    auto x = randn(outer * axis * inner);
    std::vector<int> gi(outer * n * inner);
    for (int &i : gi) i = (int)(rng() % axis);
    std::vector<float> g(gi.size());
    launch(u, "nd_gather", element_grid((long)gi.size()), D3(256), (const float *)x.data(), (const int *)gi.data(), g.data(), (long long)outer,
           (long long)axis, (long long)inner, (long long)n);
    std::vector<double> wg(g.size());
    for (long o = 0; o < outer; o++)
        for (long j = 0; j < n; j++)
            for (long i = 0; i < inner; i++) {
                long e = (o * n + j) * inner + i;
                wg[e] = x[(o * axis + gi[e]) * inner + i];
            }
    check("nd_gather", g, wg, 0);
}

// ---------------------------------------------------------------------------------------------
// The emulator's own semantics (selftest_kernels/emu_selftest.cu)

// Reference roundings from tables of all finite values of the 16-bit format: nearest, ties to
// the even encoding, beyond the largest finite value + half an ulp -> inf.
struct SmallFloatTable {
    std::vector<std::pair<double, uint16_t>> pos;   // positive finite values, ascending
    double overflow;                                // |x| >= overflow -> inf
    uint16_t inf;
    SmallFloatTable(bool half) {
        for (uint32_t b = 0; b < 0x8000; b++) {
            double v;
            if (half) {
                uint32_t e = (b >> 10) & 31, m = b & 1023;
                if (e == 31) continue;
                v = e == 0 ? std::ldexp((double)m, -24) : std::ldexp(1024.0 + m, (int)e - 25);
            } else {
                uint32_t e = (b >> 7) & 255, m = b & 127;
                if (e == 255) continue;
                v = e == 0 ? std::ldexp((double)m, -133) : std::ldexp(128.0 + m, (int)e - 134);
            }
            pos.push_back({v, (uint16_t)b});
        }
        std::sort(pos.begin(), pos.end());
        double maxv = pos.back().first, ulp = maxv - pos[pos.size() - 2].first;
        overflow = maxv + ulp / 2;
        inf = half ? 0x7c00 : 0x7f80;
    }
    uint16_t round(double x) const {
        if (std::isnan(x)) return 0x7fff;
        uint16_t sign = std::signbit(x) ? 0x8000 : 0;
        double a = std::fabs(x);
        if (a >= overflow) return sign | inf;
        auto it = std::lower_bound(pos.begin(), pos.end(), std::make_pair(a, (uint16_t)0));
        if (it == pos.end()) return sign | pos.back().second;   // above the largest finite, below the overflow threshold
        if (it->first == a || it == pos.begin()) return sign | it->second;
        auto lo = it - 1;
        double dl = a - lo->first, dh = it->first - a;
        if (dl < dh) return sign | lo->second;
        if (dh < dl) return sign | it->second;
        return sign | ((lo->second & 1) ? it->second : lo->second);
    }
    uint16_t truncate(double x) const {   // toward zero, largest finite for finite overflow
        if (std::isnan(x)) return 0x7fff;
        uint16_t sign = std::signbit(x) ? 0x8000 : 0;
        double a = std::fabs(x);
        if (std::isinf(a)) return sign | inf;
        auto it = std::upper_bound(pos.begin(), pos.end(), std::make_pair(a, (uint16_t)0xffff));
        return sign | (it - 1)->second;
    }
};

static std::string run_expecting_abort(const std::function<void()> &fn, bool *aborted, int signal = SIGABRT) {
    int fds[2];
    if (pipe(fds) != 0) { perror("pipe"); exit(2); }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        fn();
        _exit(0);
    }
    close(fds[1]);
    std::string out;
    char buf[4096];
    ssize_t r;
    while ((r = read(fds[0], buf, sizeof buf)) > 0) out.append(buf, (size_t)r);
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    *aborted = WIFSIGNALED(status) && WTERMSIG(status) == signal;
    return out;
}

static void expect_abort(const std::string &what, const std::function<void()> &fn, const char *needle, int signal = SIGABRT) {
    bool aborted;
    std::string msg = run_expecting_abort(fn, &aborted, signal);
    bool ok = aborted && msg.find(needle) != std::string::npos && msg.find("[cuda_emu]") != std::string::npos;
    std::string line2 = msg.substr(0, std::min(msg.size(), (size_t)600));
    for (char &ch : line2)
        if (ch == '\n') ch = ' ';
    report(what, ok ? 0 : 1, 0);
    if (!ok || getenv("EMU_SELFTEST_VERBOSE")) printf("       message: %s\n", line2.c_str());
}

static void test_emulator(const Unit &u) {
    printf("emulator semantics (emu_selftest.cu)\n");
    // Built-in variables over a 3-D grid of 3-D blocks
    {
        nd_dim3 g = D3(3, 2, 2), b = D3(5, 3, 2);
        unsigned nb = 12, nt = 30;
        std::vector<unsigned> out(4 * nb * nt, 0xdeadbeef);
        launch(u, "emu_ids", g, b, out.data());
        bool ok = true;
        for (unsigned bz = 0; bz < 2; bz++)
            for (unsigned by = 0; by < 2; by++)
                for (unsigned bx = 0; bx < 3; bx++)
                    for (unsigned tz = 0; tz < 2; tz++)
                        for (unsigned ty = 0; ty < 3; ty++)
                            for (unsigned tx = 0; tx < 5; tx++) {
                                unsigned blk = bx + 3 * (by + 2 * bz), th = tx + 5 * (ty + 3 * tz), at = 4 * (blk * nt + th);
                                ok &= out[at] == (tx | ty << 10 | tz << 20) && out[at + 1] == (bx | by << 10 | bz << 20) &&
                                      out[at + 2] == (5u | 3u << 10 | 2u << 20) && out[at + 3] == (3u | 2u << 10 | 2u << 20);
                            }
        check_true("threadIdx/blockIdx/blockDim/gridDim over grid (3,2,2) x block (5,3,2)", ok);
    }
    // Parameters of many sizes and a struct with padding
    {
        struct EmuArgs { char c; double d; short s[3]; } s{'q', -2.5, {7, -8, 9}};
        float pv = 4.75f;
        std::vector<double> out(13, 0);
        launch(u, "emu_args", D3(1), D3(4), (char)-3, (short)-1234, 100000, -123456789012345LL, 1.5f, 3.25, s, (unsigned char)200,
               (const float *)&pv, out.data());
        std::vector<double> want = {-3, -1234, 100001, -123456789012345.0, 1.5, 3.25, 'q', -2.5, 7, -8, 9, 200, 4.75};
        check("kernel parameters (char, short, int, long long, float, double, struct, uchar, ptr)", out, want, 0);
    }
    {
        auto it = u.arg_sizes.find("emu_args");
        check_true("nd_emu_kernel_args: emu_args has 10 parameters of 1, 2, 4, 8, 4, 8, 24, 1, 8, 8 bytes",
                   it != u.arg_sizes.end() && it->second == std::vector<unsigned>{1, 2, 4, 8, 4, 8, 24, 1, 8, 8});
    }
    // A block-wide reduction through shared memory with barriers (1024 threads), and the counting barriers
    {
        int blocks = 3, n = 1024;
        auto x = randn(blocks * n);
        std::vector<float> out(blocks);
        std::vector<int> counts(3 * blocks);
        launch(u, "emu_block_sum", D3(blocks), D3(n), (const float *)x.data(), out.data(), counts.data());
        std::vector<double> want(blocks, 0);
        for (int b = 0; b < blocks; b++)
            for (int i = 0; i < n; i++) want[b] += x[b * n + i];
        check("block reduction in shared memory, 1024 threads, 11 barriers", out, want, 1e-5);
        check_true("__syncthreads_count / _and / _or", counts[0] == 342 && counts[1] == 1 && counts[2] == 1 && counts[6] == 342);
    }
    // A data race shows as order dependence; shared memory poisoned per block
    {
        std::vector<int> a(256), b(256), c(256);
        launch(u, "emu_neighbour", D3(1), D3(256), a.data(), 1);
        bool ok = true;
        for (int t = 0; t < 256; t++) ok &= a[t] == (t + 1) % 256 + 1000;
        check_true("neighbour exchange with __syncthreads: correct", ok);
        { ScopedSchedule s("inorder"); launch(u, "emu_neighbour", D3(1), D3(256), b.data(), 0); }
        { ScopedSchedule s("reverse"); launch(u, "emu_neighbour", D3(1), D3(256), c.data(), 0); }
        if (!ND_SELFTEST_ASAN)
        check_true("missing __syncthreads: in-order reads poison (-1), reverse reads values",
                   b[0] == -1 && b[254] == -1 && b[255] == 1000 && c[0] == 1001 && c[254] == 1255 && c[255] == -1,
                   "inorder b[0]=" + std::to_string(b[0]) + ", reverse c[0]=" + std::to_string(c[0]));
        std::vector<unsigned> s(2);
        launch(u, "emu_unwritten_shared", D3(2), D3(32), s.data());
        if (!ND_SELFTEST_ASAN)   // the units built with --sanitize address keep shared arrays as plain statics, unpoisoned
            check_true("shared memory: written value seen in its block, poison in the next", s[0] == 7 && s[1] == 0xffffffffu);
    }
    // Warp operations with a partial last warp (40 threads: warp 1 has lanes 0..7)
    {
        int n = 40;
        std::vector<int> x(n), up(n), idx(n), sums(n), sub(n);
        std::vector<unsigned> ballot(n);
        std::vector<double> dbl(n);
        for (int i = 0; i < n; i++) x[i] = (int)(rng() % 100);
        x[2] = 3;
        for (const char *sched : {"inorder", "reverse", "shuffle"}) {
            {
                ScopedSchedule s(sched);
                launch(u, "emu_warp_ops", D3(1), D3(n), (const int *)x.data(), up.data(), idx.data(), ballot.data(), sums.data(), dbl.data(), sub.data());
            }
            bool ok = true;
            for (int t = 0; t < n; t++) {
                int w = t / 32, l = t % 32, lanes = w == 0 ? 32 : 8, base = w * 32;
                ok &= up[t] == (l >= 1 ? x[t - 1] : x[t]);
                ok &= idx[t] == x[base + 3];
                unsigned bal = 0;
                int sc = 0, any = 0, all = 1;
                for (int j = 0; j < lanes; j++) {
                    bal |= (unsigned)(x[base + j] % 2 == 0) << j;
                    if (j <= l) sc += x[base + j];
                    any |= x[base + j] == 3;
                    all &= x[base + j] >= 0;
                }
                ok &= ballot[t] == bal && sums[t] == sc;
                ok &= dbl[t] == (double)x[base + (l ^ 1)] + 0.25;
                int g8 = 0;
                for (int j = 0; j < 8; j++) g8 += x[base + (l & ~7) + j];
                ok &= sub[t] == g8 + 1000 * any + 10000 * all + 100000 * lanes;
            }
            check_true(std::string("warp ops on a partial warp (shfl up/idx/xor width 8, ballot, any, all, reduce, double), ") + sched, ok);
        }
    }
    // Conversions against table-based references
    {
        SmallFloatTable H(true), B(false);
        long n = 400000;
        std::vector<float> x(n);
        std::uniform_int_distribution<uint32_t> bits;
        for (long i = 0; i < n; i++) {
            uint32_t b = bits(rng);
            if (i % 2) b = (b & 0x80000000u) | (0x33000000u + b % (0x47800000u - 0x33000000u));   // the half range, subnormals included
            memcpy(&x[i], &b, 4);
        }
        const float special[] = {0.0f, -0.0f, kInf, -kInf, kNaN, 65504.0f, 65519.996f, 65520.0f, 65536.0f, 6.1035156e-05f, 5.9604645e-08f,
                                 2.9802322e-08f, 2.9802326e-08f, 8.940697e-08f, 3.4028235e38f, 3.3961776e38f, 1e-45f, 1.0f + 1.0f / 256};
        for (size_t i = 0; i < sizeof special / sizeof *special; i++) x[i] = special[i];
        std::vector<uint16_t> bf(n), hf(n), bfz(n), hfz(n);
        std::vector<float> hback(n);
        auto t0 = std::chrono::steady_clock::now();
        launch(u, "emu_convert", D3(64), D3(256), (const float *)x.data(), bf.data(), hf.data(), hback.data(), bfz.data(), hfz.data(), (long long)n);
        double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        long eb = 0, eh = 0, ebz = 0, ehz = 0, eback = 0;
        for (long i = 0; i < n; i++) {
            eb += bf[i] != B.round(x[i]);
            eh += hf[i] != H.round(x[i]);
            if (getenv("EMU_SELFTEST_VERBOSE") && (bf[i] != B.round(x[i]) || hf[i] != H.round(x[i])))
                printf("    x=%a bf %04x want %04x  hf %04x want %04x\n", x[i], bf[i], B.round(x[i]), hf[i], H.round(x[i]));
            ebz += bfz[i] != B.truncate(x[i]);
            ehz += hfz[i] != H.truncate(x[i]);
            float want = (hf[i] & 0x7fff) > 0x7c00 ? kNaN : (float)(_Float16)x[i];
            eback += !(hback[i] == want || (std::isnan(hback[i]) && std::isnan(want)));
        }
        char d[120];
        snprintf(d, sizeof d, "(400k values, %.0f ms)", ms);
        check_true(std::string("__float2bfloat16_rn / __float2half_rn / _rz / __half2float bits ") + d, eb + eh + ebz + ehz + eback == 0,
                   std::to_string(eb) + "/" + std::to_string(eh) + "/" + std::to_string(ebz) + "/" + std::to_string(ehz) + "/" + std::to_string(eback) + " mismatches");
        long m = 100000;
        std::vector<double> xd(m), inv(m);
        std::uniform_real_distribution<double> ud(-1.0, 1.0);
        for (long i = 0; i < m; i++) xd[i] = i % 3 == 0 ? ud(rng) : i % 3 == 1 ? std::ldexp(ud(rng), -(int)(rng() % 40)) : ud(rng) * 70000.0;
        xd[0] = 0.5; xd[1] = 1.0 - 1e-12; xd[2] = -1.0; xd[3] = 65519.999999; xd[4] = 65520.0;
        std::vector<uint16_t> bd(m), hd(m);
        launch(u, "emu_convert_double", D3(16), D3(256), (const double *)xd.data(), bd.data(), hd.data(), inv.data(), (long long)m);
        long e1 = 0, e2 = 0;
        double einv = 0;
        for (long i = 0; i < m; i++) {
            e1 += bd[i] != B.round(xd[i]);
            e2 += hd[i] != H.round(xd[i]);
            if (getenv("EMU_SELFTEST_VERBOSE") && (bd[i] != B.round(xd[i]) || hd[i] != H.round(xd[i])))
                printf("    xd=%a bf %04x want %04x  hf %04x want %04x\n", xd[i], bd[i], B.round(xd[i]), hd[i], H.round(xd[i]));
            if (std::fabs(xd[i]) < 1.0) einv = std::max(einv, std::fabs(std::erf(inv[i]) - xd[i]) / std::max(1e-300, std::fabs(xd[i])));
        }
        check_true("__double2bfloat16 / __double2half bits (100k values)", e1 + e2 == 0, std::to_string(e1) + "/" + std::to_string(e2) + " mismatches");
        report("erfinv: |erf(erfinv(y)) - y| / |y|", einv, 1e-13);
        report("erfinv(0.5) = 0.4769362762044699", err_of(inv[0], 0.4769362762044699), 1e-15);
        check_true("erfinv(-1) = -inf", inv[2] == -INFINITY);
    }
    // A 1024-thread block with 16 KiB of locals per fiber
    {
        std::vector<float> out(2048);
        launch(u, "emu_big_block", D3(2), D3(1024), out.data());
        bool ok = true;
        for (int i = 0; i < 2048; i++) {
            float want = 0;
            for (int k = 0; k < 4096; k += 512) want += (float)(k + i % 1024);
            ok &= out[i] == want;
        }
        check_true("1024 fibers with 16 KiB stack frames", ok);
    }
    // Misuse aborts with a clear message
    std::vector<float> buf(1024);
    float *bp = buf.data();
    int *ip = (int *)buf.data();
    expect_abort("abort: a thread returns before __syncthreads", [&] { launch(u, "emu_fault_return_before_barrier", D3(1), D3(64), ip); },
                 "can never complete");
    expect_abort("abort: divergent __syncthreads", [&] { launch(u, "emu_fault_divergent_barrier", D3(1), D3(64), ip); }, "divergent __syncthreads");
    expect_abort("abort: shuffle whose mask names a returned lane", [&] { launch(u, "emu_fault_shfl_after_return", D3(1), D3(64), bp); },
                 "returned");
    expect_abort("abort: shuffle reads a lane beyond blockDim (partial warp)", [&] { launch(u, "emu_fault_shfl_missing_lane", D3(1), D3(40), bp); },
                 "does not exist");
    expect_abort("abort: deadlock (half a warp at __syncthreads, half in a shuffle)",
                 [&] { launch(u, "emu_fault_mixed_deadlock", D3(1), D3(64), bp); }, "deadlock");
    expect_abort("abort: block larger than __launch_bounds__", [&] { launch(u, "emu_fault_bounds", D3(1), D3(128), bp); }, "__launch_bounds__");
#if !ND_SELFTEST_ASAN
    expect_abort("SIGSEGV names kernel, block and thread: bad pointer", [&] { launch(u, "emu_fault_bad_pointer", D3(2), D3(32), (float *)nullptr); },
                 "invalid memory access", SIGSEGV);
    expect_abort("SIGSEGV names kernel, block and thread: fiber stack overflow",
                 [&] { launch(u, "emu_fault_stack_overflow", D3(1), D3(32), (int *)bp); }, "stack overflowed", SIGSEGV);
#endif
    expect_abort("abort: block of 2048 threads", [&] { launch(u, "emu_ids", D3(1), D3(2048), (unsigned *)bp); }, "exceeds the limits");
}

// ---------------------------------------------------------------------------------------------
// Timing of a few launches of realistic size

static void test_speed(const Unit &rows, const Unit &attn) {
    printf("speed\n");
    if (rows) {
        long r = 4096, c = 256;
        auto x = randn(r * c);
        std::vector<float> y(r * c);
        auto t0 = std::chrono::steady_clock::now();
        launch(rows, "nd_softmax_forward", warp_grid(r), D3(256), x.data(), y.data(), (long long)r, (long long)c, 0);
        double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        printf("  nd_softmax_forward 4096 x 256 (1M elements, 512 blocks): %.1f ms\n", ms);
        long n = 4096;
        auto xs = randn(n);
        std::vector<double> partial(16);
        t0 = std::chrono::steady_clock::now();
        launch(rows, "nd_sum_of_squares", D3(16), D3(256), xs.data(), partial.data(), (long long)n);
        ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        printf("  nd_sum_of_squares n=4096 (16 blocks): %.2f ms\n", ms);
    }
    if (attn) {
        AttnParams p{};
        p.batchHeads = 4; p.heads = 4; p.tq = 256; p.tk = 256; p.d = 64;
        p.scale = 0.125f; p.scaleLog2 = p.scale * 1.44269504f; p.keepScale = 1; p.causal = 1;
        auto q = randn(4 * 256 * 64), k = randn(4 * 256 * 64), v = randn(4 * 256 * 64);
        std::vector<float> out(q.size()), lse(4 * 256);
        auto t0 = std::chrono::steady_clock::now();
        launch(attn, "nd_attn_forward_d64", D3(4 * 4), D3(256), (const float *)q.data(), (const float *)k.data(), (const float *)v.data(), out.data(),
               lse.data(), p);
        double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        printf("  nd_attn_forward_d64 B·H 4, T 256, D 64, causal (16 blocks): %.1f ms\n", ms);
    }
}

int main(int argc, char **argv) {
    bool extended = false;
    if (argc > 1 && !strcmp(argv[1], "--extended")) { extended = true; argv++; argc--; }
    if (argc < 2) {
        fprintf(stderr, "usage: %s [--extended] KERNEL_SO_DIR [SELFTEST_SO_DIR]\n", argv[0]);
        return 2;
    }
    std::string dir = argv[1];
    printf("CUDA emulator self-test (NANODECODER_EMU_SCHEDULE=%s)\n", getenv("NANODECODER_EMU_SCHEDULE") ? getenv("NANODECODER_EMU_SCHEDULE") : "inorder");
    Unit rows = open_unit(dir, "engine_rows"), attn = open_unit(dir, "engine_attention"), legacyAttn = open_unit(dir, "attention"),
         legacyRows = open_unit(dir, "rows"), opt = open_unit(dir, "optimizer"), elem = open_unit(dir, "elementwise"),
         point = open_unit(dir, "engine_pointwise"), index = open_unit(dir, "engine_indexing");
    if (rows) test_engine_rows(rows);
    if (attn) test_engine_attention(attn, extended);
    if (legacyAttn) test_attention_legacy(legacyAttn);
    if (legacyRows) test_rows_legacy(legacyRows);
    if (opt) test_optimizer(opt);
    if (elem) test_elementwise(elem);
    if (point) test_engine_pointwise(point);
    if (index) test_engine_indexing(index);
    if (argc > 2) {
        Unit self = open_unit(argv[2], "emu_selftest");
        if (self) test_emulator(self);
    }
    test_speed(rows, attn);
    printf("%d of %d checks passed; worst relative error among tolerance checks %.3g\n", g_checks - g_failures, g_checks, g_worst_rel);
    return g_failures ? 1 : 0;
}
