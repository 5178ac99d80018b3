/// Errors from loading Open MPI, calling it, or launching a job. Each says what to do next.
public enum MPIError: Error, CustomStringConvertible, Equatable {
    /// No candidate path could be opened with `dlopen`; `tried` pairs each path with `dlerror()`.
    case libraryNotFound(tried: [String], reasons: [String])
    /// The library opened but lacks a symbol this module needs (not Open MPI 4.x/5.x?).
    case missingSymbol(name: String, library: String)
    /// An MPI call returned an error code; `message` is `MPI_Error_string`'s text.
    case callFailed(function: String, code: Int32, message: String)
    /// A buffer size or root rank that MPI cannot accept.
    case invalidArgument(function: String, message: String)
    /// The communicator was already finalized, or MPI was finalized behind its back.
    case finalized(function: String)
    /// `mpirun` is not on PATH and `NANODECODER_MPIRUN` is not set.
    case mpirunNotFound(searched: [String])

    public var description: String {
        switch self {
        case let .libraryNotFound(tried, reasons):
            // dlerror() usually starts with the path already.
            let lines = zip(tried, reasons).map { "  " + ($1.hasPrefix($0) ? $1 : "\($0): \($1)") }.joined(separator: "\n")
            return """
                Open MPI (libmpi.so.40) could not be loaded, so this process cannot join a multi-process run.
                Tried:
                \(lines)
                Install it with `apt-get install openmpi-bin libopenmpi3` (run time only) or `apt-get install libopenmpi-dev`, \
                or point NANODECODER_MPI_LIBRARY at libmpi.so. Single-process runs do not need MPI: launch without mpirun.
                """
        case let .missingSymbol(name, library):
            return "\(library) has no symbol '\(name)': this module needs Open MPI 4.x or 5.x (MPICH and Intel MPI have a different ABI)"
        case let .callFailed(function, code, message):
            return "\(function) failed with MPI error \(code): \(message)"
        case let .invalidArgument(function, message):
            return "\(function): \(message)"
        case let .finalized(function):
            return "\(function): MPI was already finalized in this process; collectives are no longer possible"
        case let .mpirunNotFound(searched):
            return """
                mpirun was not found (looked at: \(searched.joined(separator: ", "))). \
                Install it with `apt-get install openmpi-bin libopenmpi3`, or set NANODECODER_MPIRUN to its path.
                """
        }
    }
}
