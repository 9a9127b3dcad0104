import ArgumentParser
import TallyDaemon
import TallyEngine

// MARK: - tally check

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate a pipeline file: exit 0, or 2 with the file, line and field of each error."
    )

    @Argument(help: "The pipeline file.")
    var file: String

    func run() throws {
        let diagnostics = Pipeline.check(path: file)
        guard diagnostics.isEmpty else {
            for d in diagnostics { printError(d.description) }
            throw CommandFailure(code: 2, "\(file): \(diagnostics.count) error(s): fix them and run 'tally check \(file)' again")
        }
        let pipeline = try Pipeline.load(path: file)
        print("\(file): ok: pipeline \(pipeline.name), \(pipeline.indicators.count) indicators")
    }
}
