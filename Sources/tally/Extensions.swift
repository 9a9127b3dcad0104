import ArgumentParser

/// Subcommands contributed by other parts of the project (`keys`, `bench`): add them here.
let extraSubcommands: [any ParsableCommand.Type] = [KeysCommand.self, BenchCommand.self]
