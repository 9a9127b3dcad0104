import ArgumentParser
import TallyDaemon
#if canImport(Glibc)
import Glibc
#endif

// MARK: - tally keys

/// `tally keys`: CURVE certificates in the ZeroMQ convention (`NAME.key` / `NAME.key_secret`, ZPL),
/// loadable by pyzmq (`zmq.auth.load_certificate`) and CZMQ (`zcert_load`).
struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Create and inspect CURVE certificates for `tally run --curve-secret/--authorized-keys`.",
        discussion: """
            A server:   tally keys generate server --dir /etc/tally/keys
                        tally run --curve-secret /etc/tally/keys/server.key_secret --authorized-keys /etc/tally/authorized ...
            A producer: tally keys generate hanoi --dir keys --role producer --sources /province/hanoi
                        then copy keys/hanoi.key (never the .key_secret) into the server's --authorized-keys directory.
            """,
        subcommands: [Generate.self, Show.self, Bench.self]
    )

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a new key pair: DIR/NAME.key (public, 0644) and DIR/NAME.key_secret (0600).")

        @Argument(help: "The certificate name (letters, digits, '.', '_', '-'); it becomes the client's User-Id.")
        var name: String

        @Option(help: "Where to write the pair (created 0700 when missing).")
        var dir: String

        @Option(help: "producer, subscriber or producer,subscriber.")
        var role: String = "producer,subscriber"

        @Option(help: "Comma-separated CloudEvents source prefixes this key may send (e.g. /province/hanoi,/ndxp/); omit for any.")
        var sources: String?

        @Flag(help: "Replace an existing pair of that name.")
        var force = false

        func run() throws {
            do {
                let roles = try Roles(parsing: role)
                let list = try sources.map { text throws(CertificateError.Problem) -> [String] in
                    let policy = try SourcePolicy(parsing: text)
                    return policy.sourcePrefixes ?? []
                }
                let cert = try Certificate.generate(name: name, roles: roles, sources: list)
                let paths = try cert.write(toDirectory: dir, overwrite: force)
                print("public key: \(cert.publicKey.z85)")
                print("wrote \(paths.publicPath) (public: give it to the other side)")
                print("wrote \(paths.secretPath) (secret, mode 0600: keep it here)")
            } catch let e as CertificateError.Problem {
                printToStderr("tally keys generate: \(e)")
                throw ExitCode(2)
            } catch let e as CertificateError {
                printToStderr("tally keys generate: \(e)")
                throw ExitCode(e.isUsage ? 2 : 1)
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a certificate's name, public key, role and sources (never the secret key).")

        @Argument(help: "A NAME.key or NAME.key_secret file.")
        var file: String

        func run() throws {
            do {
                let cert = file.hasSuffix(".key_secret")
                    ? try Certificate.load(secretFile: file) : try Certificate.load(publicFile: file)
                print("name: \(cert.name)")
                print("public-key: \(cert.publicKey.z85)")
                print("role: \(try cert.roles())")
                print("sources: \(try cert.sources())")
            } catch {
                printToStderr("tally keys show: \(error)")
                throw ExitCode(2)
            }
        }
    }
}

private func printToStderr(_ text: String) {
    let line = Array((text + "\n").utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

extension CertificateError {
    /// Errors the operator fixes by changing the command (a bad name, an existing file).
    fileprivate var isUsage: Bool {
        switch problem {
        case .badName, .exists, .badMetadata: return true
        default: return false
        }
    }
}

// MARK: - tally keys bench

extension KeysCommand {
    /// `tally keys bench`: what CURVE costs here (events/s, CURVE on vs off, same run).
    struct Bench: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Measure ingest throughput over loopback TCP with CURVE on and off (same run).")

        @Option(help: "Events per measurement.")
        var events = 1_000_000

        @Option(help: "Events per frame (JSON batch).")
        var batch = 100

        @Option(help: "Alternating off/on rounds; the best of each is reported.")
        var rounds = 2

        func run() throws {
            let results = try CurveBenchmark.run(events: events, batch: batch, rounds: rounds)
            for r in results { print(r) }
            let off = results.filter { !$0.curve }.map(\.eventsPerSecond).max() ?? 0
            let on = results.filter(\.curve).map(\.eventsPerSecond).max() ?? 0
            print("best: off \(Int(off)) events/s, on \(Int(on)) events/s, CURVE keeps \(Int((on / off * 100).rounded()))% (batch \(batch))")
        }
    }
}
