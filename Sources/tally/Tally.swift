import ArgumentParser
import TallyDaemon
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - tally

/// The one executable. Exit codes (protocol.md): 0 success, 1 runtime failure, 2 usage or
/// configuration error. argument-parser's own validation failures (64 by default) are mapped to 2.
///
/// To add a subcommand, append its type to ``Tally/subcommandTypes`` (other engineers add
/// `keys` and `bench` this way).
@main
struct Tally: AsyncParsableCommand {
    static let subcommandTypes: [any ParsableCommand.Type] = [
        RunCommand.self, CheckCommand.self, SendCommand.self, WatchCommand.self, SimulateCommand.self, DemoCommand.self,
    ] + extraSubcommands

    static let configuration = CommandConfiguration(
        commandName: "tally",
        abstract: "Real-time national digital-transformation indicators over ZeroMQ.",
        discussion: """
            Start with `tally demo`. Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.
            """,
        subcommands: subcommandTypes
    )

    static func main() async {
        do {
            var command = try parseAsRoot()
            if var async = command as? any AsyncParsableCommand {
                try await async.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withMappedError: error)
        }
    }

    /// Prints the error and exits with the protocol's code for it.
    static func exit(withMappedError error: any Error) -> Never {
        if let e = error as? ConfigError {
            printError("tally: \(e)")
            Glibc.exit(2)
        }
        if let e = error as? DaemonError {
            printError("tally: \(e)")
            Glibc.exit(e.exitCode)
        }
        if let e = error as? CommandFailure {
            if !e.message.isEmpty { printError("tally: \(e.message)") }
            Glibc.exit(e.code)
        }
        let code = exitCode(for: error)
        if code == .validationFailure {
            printError(fullMessage(for: error))
            printError("Run 'tally help' or 'tally <command> --help' for the options.")
            Glibc.exit(2)
        }
        // Help and version requests exit 0 with their text on stdout; anything else is a runtime failure.
        Tally.exit(withError: error)
    }
}

func printError(_ text: String) {
    var line = text
    if !line.hasSuffix("\n") { line += "\n" }
    var bytes = Array(line.utf8)
    _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
}
