// One thread team for every CPU phase: the Swift kernels run on the same OpenMP (libgomp) team
// as oneDNN's GEMMs, so no second pool of threads spins or sleeps beside it (shared notes §3:
// two pools on two cores fight for the cores between phases).
#ifndef ND_PARALLEL_H
#define ND_PARALLEL_H
#include <stdint.h>

/// A task body: called once per worker with that worker's index in [0, workers).
typedef void (*nd_task_fn)(void *context, int32_t worker);

/// 1 when libgomp's GOMP_parallel was found in the process (oneDNN links libgomp), else 0.
int32_t nd_parallel_available(void);

/// Runs fn(context, w) for w in [0, workers) on the OpenMP team, the caller being worker 0.
/// Returns after every worker finished. Needs nd_parallel_available().
void nd_parallel_run(nd_task_fn fn, void *context, int32_t workers);

#endif
