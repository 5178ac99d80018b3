// NCCL takes its 128-byte unique id by value, which Swift cannot pass through a function
// pointer it loaded with dlsym; this trampoline does. NCCL itself is loaded at run time.
#ifndef ND_NCCL_SHIM_H
#define ND_NCCL_SHIM_H

/// NCCL's ncclUniqueId: 128 opaque bytes that rank 0 makes and every rank must receive.
typedef struct { char internal[128]; } nd_nccl_unique_id;

/// Calls `init_rank` (ncclCommInitRank from dlsym) with the id passed by value as NCCL's ABI wants.
int nd_nccl_comm_init_rank(void *init_rank, void **comm, int nranks, const nd_nccl_unique_id *id, int rank);

#endif
