import ArgumentParser

@main
struct Tally: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tally",
        abstract: "Real-time national digital-transformation indicators over ZeroMQ."
    )
}
