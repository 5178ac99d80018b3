// swift-tools-version: 6.0
import Foundation
import PackageDescription

// Kernels are compiled for the build machine's CPU by default. For a binary that runs on
// other x86-64 machines set NANODECODER_CPU=haswell (AVX2 + FMA) before building.
// Without any target CPU Swift emits SSE2 code and SIMD math becomes scalar libm calls.
let targetCPU = ProcessInfo.processInfo.environment["NANODECODER_CPU"] ?? "native"
let cpuFlags: [String] = targetCPU == "native"
    ? ["-Xcc", "-march=native", "-Xcc", "-Wno-psabi"]
    : ["-target-cpu", targetCPU, "-Xcc", "-march=\(targetCPU)", "-Xcc", "-Wno-psabi"]
let kernelSwiftSettings: [SwiftSetting] = [.unsafeFlags(cpuFlags)]
let kernelCSettings: [CSetting] = [.unsafeFlags(["-O3", "-march=\(targetCPU)", "-Wno-psabi"])]

let package = Package(
    name: "Nanodecoder",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "nanodecoder", targets: ["NanodecoderCLI"]),
        .library(name: "NanoEngine", targets: ["NanoEngine"]),
        .library(name: "NanoCPU", targets: ["NanoCPU"]),
        .library(name: "NanoNN", targets: ["NanoNN"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
    ],
    targets: [
        // C shims: the oneDNN matmul primitive (2.x and 3.x C APIs), vector math helpers, and the
        // by-value call NCCL's communicator setup needs (NCCL itself is loaded at run time).
        .target(name: "CDNNLShim", cSettings: kernelCSettings, linkerSettings: [.linkedLibrary("dnnl")]),
        .target(name: "CNCCLShim"),
        .target(name: "CKernelMath", cSettings: kernelCSettings),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),

        // Layer 1: tensors, dtypes, devices, autograd, ops (backend-independent).
        .target(name: "NanoEngine", swiftSettings: kernelSwiftSettings),
        // Layer 2: the CPU backend (oneDNN GEMM, Swift SIMD kernels, caching allocator).
        .target(name: "NanoCPU", dependencies: ["NanoEngine", "CDNNLShim", "CKernelMath", "COpenBLAS"],
                swiftSettings: kernelSwiftSettings),
        // Layer 3: modules and initialisers.
        .target(name: "NanoNN", dependencies: ["NanoEngine", "NanoCPU"], swiftSettings: kernelSwiftSettings),
        // Layer 4: models (dense GPT, MoE GPT).
        .target(name: "NanoModels", dependencies: ["NanoEngine", "NanoNN"], swiftSettings: kernelSwiftSettings),
        // Layer 4: tokenizers and token datasets (no tensor dependency for the tokenizers).
        .target(name: "NanoData", dependencies: ["NanoEngine"], swiftSettings: kernelSwiftSettings),
        // Layer 4: experiment tracking (TensorBoard event files, plots, run listing); Foundation only.
        .target(name: "NanoTracking", swiftSettings: kernelSwiftSettings),
        // Layer 4: the live training dashboard (web page + JSON API over a runs folder).
        .target(name: "NanoDashboard", dependencies: ["NanoTracking", .product(name: "Hummingbird", package: "hummingbird")]),
        // Layer 4: communication between processes (Open MPI loaded at run time with dlopen); Foundation only.
        .target(name: "NanoDistributed"),
        // Layer 2 (second backend): CUDA driver, NVRTC, cuBLASLt, NCCL loaded at run time with dlopen,
        // the GPU kernels' CUDA C++ sources, and CUDABackend; builds without CUDA.
        .target(name: "NanoCUDA", dependencies: ["NanoEngine", "CNCCLShim"]),
        // Layer 5: config, optimizers, schedules, checkpoints, trainer, sampling.
        .target(name: "NanoTraining", dependencies: ["NanoEngine", "NanoCPU", "NanoNN", "NanoModels", "NanoData", "NanoTracking", "NanoDistributed",
                                                    .product(name: "Yams", package: "Yams")],
                swiftSettings: kernelSwiftSettings),
        // Command-line tool.
        .executableTarget(name: "NanodecoderCLI",
                          dependencies: ["NanoEngine", "NanoCPU", "NanoNN", "NanoModels", "NanoData", "NanoTraining", "NanoTracking", "NanoDashboard", "NanoDistributed", "NanoCUDA",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          swiftSettings: kernelSwiftSettings),

        // Shared test helpers (finite-difference gradient check).
        .target(name: "NanoTestSupport", dependencies: ["NanoEngine", "NanoCPU"], path: "Tests/NanoTestSupport",
                swiftSettings: kernelSwiftSettings),
        .testTarget(name: "NanoEngineTests", dependencies: ["NanoEngine", "NanoCPU", "NanoNN", "NanoTestSupport"],
                    resources: [.copy("Fixtures")], swiftSettings: kernelSwiftSettings),
        .testTarget(name: "NanoModelsTests", dependencies: ["NanoEngine", "NanoCPU", "NanoNN", "NanoModels", "NanoTestSupport"],
                    swiftSettings: kernelSwiftSettings),
        .testTarget(name: "NanoDashboardTests", dependencies: ["NanoDashboard", "NanoTracking",
                                                             .product(name: "Hummingbird", package: "hummingbird")]),
        .testTarget(name: "NanoTrackingTests", dependencies: ["NanoTracking", "NanoTestSupport"], swiftSettings: kernelSwiftSettings),
        .testTarget(name: "NanoCUDATests", dependencies: ["NanoCUDA", "NanoEngine", "NanoCPU", "NanoTestSupport"], swiftSettings: kernelSwiftSettings),
        .testTarget(name: "NanoDataTests", dependencies: ["NanoData"], swiftSettings: kernelSwiftSettings),
        .testTarget(name: "NanoTrainingTests", dependencies: ["NanoEngine", "NanoCPU", "NanoNN", "NanoModels", "NanoData", "NanoTraining", "NanoTracking", "NanoDistributed", "NanoTestSupport"],
                    resources: [.copy("Fixtures")], swiftSettings: kernelSwiftSettings),
    ]
)
