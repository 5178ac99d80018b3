#define _GNU_SOURCE
#include "parallel.h"
#include <dlfcn.h>
#include <stddef.h>

// libgomp's entry points, found at run time: GOMP_parallel is the ABI that `#pragma omp parallel`
// lowers to (GCC ≥ 4.9), so no OpenMP compiler flag or header is needed here.
typedef void (*gomp_parallel_fn)(void (*)(void *), void *, unsigned, unsigned);
typedef int (*omp_thread_num_fn)(void);

static gomp_parallel_fn gomp_parallel;
static omp_thread_num_fn omp_thread_num, omp_num_threads;
static int resolved = -1;

static void resolve(void) {
    if (resolved >= 0) return;
    void *lib = dlopen("libgomp.so.1", RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
    if (!lib) lib = dlopen("libgomp.so.1", RTLD_NOW | RTLD_GLOBAL);
    if (lib) {
        gomp_parallel = (gomp_parallel_fn)dlsym(lib, "GOMP_parallel");
        omp_thread_num = (omp_thread_num_fn)dlsym(lib, "omp_get_thread_num");
        omp_num_threads = (omp_thread_num_fn)dlsym(lib, "omp_get_num_threads");
    }
    resolved = (gomp_parallel && omp_thread_num && omp_num_threads) ? 1 : 0;
}

int32_t nd_parallel_available(void) { resolve(); return resolved; }

struct nd_job { nd_task_fn fn; void *context; int32_t workers; };

// The team may be smaller than asked (OMP_THREAD_LIMIT, nesting): each thread then takes
// every team-size-th worker index, so all of them run.
static void trampoline(void *p) {
    struct nd_job *job = p;
    int32_t team = (int32_t)omp_num_threads();
    for (int32_t w = (int32_t)omp_thread_num(); w < job->workers; w += team) job->fn(job->context, w);
}

void nd_parallel_run(nd_task_fn fn, void *context, int32_t workers) {
    struct nd_job job = { fn, context, workers };
    gomp_parallel(trampoline, &job, (unsigned)workers, 0);
}
