import ArgumentParser

@main
struct Nanodecoder: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nanodecoder",
        abstract: "Build, train, evaluate and sample decoder-only transformers.",
        subcommands: [Bench.self])
}
