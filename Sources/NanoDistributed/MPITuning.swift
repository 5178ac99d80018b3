import Foundation

/// Open MPI settings this module applies before `MPI_Init`, unless the environment (or
/// `mpirun --mca`, which sets the same variables) already chooses them, or
/// `NANODECODER_MPI_TUNING=0`. Measured with Open MPI 4.1.4, 2 ranks on one 2-core VM,
/// in-place float all-reduce (median of 20):
///
/// | buffer | blocking, tuned default | blocking, ring (set here) | non-blocking, libnbc default | non-blocking, algorithm 3 (set here) |
/// |---|---|---|---|---|
/// | 1 MB | 0.19–0.25 ms | 0.17–0.22 ms | 0.35–0.42 ms | 0.18–0.20 ms |
/// | 4 MB | 0.72–0.83 ms | 0.60–0.81 ms | 1.32–1.47 ms | 0.60–0.84 ms |
/// | 40 MB | 24.5–26.1 ms | 11.8–14.5 ms | 53–56 ms | 24–26.5 ms |
///
/// With these settings a 40 MB `iAllReduceSum` overlapped 30 ms of computation completely
/// when the computing thread called `Request.test()` about once a millisecond (30.0 ms in all,
/// against 43.7 ms for blocking then computing); without `test()` calls it did not progress.
enum MPITuning {
    static let defaults: [(name: String, value: String, why: String)] = [
        ("OMPI_MCA_coll_tuned_use_dynamic_rules", "1", "lets the next line take effect"),
        ("OMPI_MCA_coll_tuned_allreduce_algorithm", "4", "ring: 1.8× faster at 40 MB, the same at 1–4 MB"),
        ("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "3", "libnbc picks binomial (reduce + broadcast) for in-place buffers: 2× slower"),
    ]

    /// Sets each default that is not set yet; must run before `MPI_Init_thread`.
    static func applyDefaults() {
        if let flag = ProcessInfo.processInfo.environment["NANODECODER_MPI_TUNING"], ["0", "off", "false", "no"].contains(flag.lowercased()) {
            return
        }
        for setting in defaults { setenv(setting.name, setting.value, 0) }
    }
}
