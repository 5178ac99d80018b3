import ArgumentParser
struct BenchOps: ParsableCommand { static let configuration = CommandConfiguration(commandName: "ops"); func run() {} }
