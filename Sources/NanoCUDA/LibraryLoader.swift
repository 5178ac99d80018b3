import Foundation

/// A CUDA library that could not be loaded: which one, every place looked, and what dlopen said.
public struct CUDALibraryError: Error, CustomStringConvertible {
    public var library: String
    public var searched: [String]
    public var reason: String
    public var description: String {
        "\(library) not found: \(reason)\n  looked in: " + (searched.isEmpty ? "the system linker path" : searched.joined(separator: ", "))
            + "\n  set CUDA_HOME or NANODECODER_CUDA_PATH to a CUDA installation or a Python environment with NVIDIA's wheels"
    }
}

/// Finds and opens the CUDA libraries at run time, so building Nanodecoder needs no CUDA at all.
/// Places searched, in order: NANODECODER_CUDA_PATH (colon-separated roots), CUDA_HOME /
/// CUDA_PATH, /usr/local/cuda, each as `<root>/lib64`, `<root>/lib` and, for Python environments
/// holding NVIDIA's pip wheels (PyTorch's), `<root>/nvidia/*/lib` and
/// `<root>/lib/python3.*/site-packages/nvidia/*/lib`; the active virtual environment and the
/// system Python's site-packages the same way; finally the system linker path (ldconfig).
public enum CUDALibraryLoader {
    /// Opened libraries by file name pattern, so each is opened once.
    nonisolated(unsafe) private static var opened: [String: UnsafeMutableRawPointer] = [:]
    private static let lock = NSLock()

    /// Directories that may hold CUDA libraries, most specific first.
    public static func searchDirectories(environment env: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
        var roots: [String] = []
        if let extra = env["NANODECODER_CUDA_PATH"] { roots += extra.split(separator: ":").map(String.init) }
        for key in ["CUDA_HOME", "CUDA_PATH"] { if let v = env[key], !v.isEmpty { roots.append(v) } }
        roots.append("/usr/local/cuda")
        if let venv = env["VIRTUAL_ENV"] { roots.append(venv) }
        roots += ["/usr/local", "/usr", NSHomeDirectory() + "/.local"]
        let fm = FileManager.default
        var dirs: [String] = []
        func nvidiaLibs(in site: String) {
            guard let packages = try? fm.contentsOfDirectory(atPath: site + "/nvidia") else { return }
            for p in packages.sorted() { dirs.append("\(site)/nvidia/\(p)/lib") }
        }
        for root in roots {
            dirs += [root + "/lib64", root + "/lib"]
            nvidiaLibs(in: root)
            for lib in ["lib", "lib64"] {
                guard let entries = try? fm.contentsOfDirectory(atPath: "\(root)/\(lib)") else { continue }
                for python in entries.sorted() where python.hasPrefix("python3") {
                    for site in ["site-packages", "dist-packages"] { nvidiaLibs(in: "\(root)/\(lib)/\(python)/\(site)") }
                }
            }
        }
        var seen = Set<String>()
        return dirs.filter { fm.fileExists(atPath: $0) && seen.insert($0).inserted }
    }

    /// Opens the first library whose file name starts with one of `names` (e.g. "libnvrtc.so.12",
    /// "libnvrtc.so.13") in the search directories, then by name through the system linker.
    public static func open(_ names: [String], environment: [String: String] = ProcessInfo.processInfo.environment) throws -> UnsafeMutableRawPointer {
        let key = names.joined(separator: "|")
        lock.lock(); defer { lock.unlock() }
        if let handle = opened[key] { return handle }
        let dirs = searchDirectories(environment: environment)
        var lastError = "no file named \(names.joined(separator: " or "))"
        for dir in dirs {
            guard let files = try? FileManager.default.contentsOfDirectory(atPath: dir) else { continue }
            for name in names {
                // Exact name first, then versioned ones (libnvrtc.so.12 → libnvrtc.so.12.9.86), skipping alt builds.
                let candidates = files.filter { $0 == name } + files.filter { $0.hasPrefix(name + ".") }.sorted()
                for file in candidates {
                    if let handle = dlopen("\(dir)/\(file)", RTLD_NOW | RTLD_GLOBAL) {
                        opened[key] = handle
                        return handle
                    }
                    lastError = String(cString: dlerror())
                }
            }
        }
        for (i, name) in names.enumerated() {
            if let handle = dlopen(name, RTLD_NOW | RTLD_GLOBAL) {
                opened[key] = handle
                return handle
            }
            let message = String(cString: dlerror())
            if i == 0 { lastError = message }   // the usual name's error reads best
        }
        throw CUDALibraryError(library: names[0], searched: dirs, reason: lastError)
    }

    /// An opened library's functions, looked up by name: `try sym("cuInit", Init.self)`.
    public struct Symbols {
        public let handle: UnsafeMutableRawPointer
        public let library: String
        public func callAsFunction<F>(_ name: String, _ type: F.Type) throws -> F {
            try CUDALibraryLoader.symbol(handle, name, as: type, library: library)
        }
    }

    /// Opens the first of `names` (see `open`) for looking functions up by name.
    public static func symbols(_ names: [String], environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Symbols {
        Symbols(handle: try open(names, environment: environment), library: names[0])
    }

    /// The NVIDIA driver's functions (libcuda.so.1).
    public static func driver(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Symbols {
        try symbols(["libcuda.so.1", "libcuda.so"], environment: environment)
    }

    /// A function pointer from an opened library, as the given @convention(c) type.
    public static func symbol<F>(_ handle: UnsafeMutableRawPointer, _ name: String, as type: F.Type, library: String) throws -> F {
        guard let p = dlsym(handle, name) else {
            throw CUDALibraryError(library: library, searched: [], reason: "symbol \(name) missing (library too old?)")
        }
        return unsafeBitCast(p, to: type)
    }
}
