#include "nccl_shim.h"

typedef int (*nd_nccl_init_rank_fn)(void **comm, int nranks, nd_nccl_unique_id id, int rank);

int nd_nccl_comm_init_rank(void *init_rank, void **comm, int nranks, const nd_nccl_unique_id *id, int rank) {
    return ((nd_nccl_init_rank_fn)init_rank)(comm, nranks, *id, rank);
}
