import Foundation
import Testing
import ZeroMQ
@testable import TallyDaemon

@Suite("Security: certificates, permissions and pyzmq interop")
struct SecurityCertificateTests {
    @Test("a generated pair is written 0644/0600 and loads back with its role and sources")
    func generateWriteLoad() throws {
        let dir = try SecuritySupport.tempDir() + "/keys"
        let cert = try Certificate.generate(name: "hanoi", roles: .producer, sources: ["/province/hanoi", "/ndxp/"])
        let paths = try cert.write(toDirectory: dir)
        #expect(SecureFiles.mode(of: paths.secretPath) == 0o600)
        #expect(SecureFiles.mode(of: paths.publicPath) == 0o644)
        #expect(SecureFiles.mode(of: dir) == 0o700)

        let pub = try Certificate.load(publicFile: paths.publicPath)
        #expect(pub.name == "hanoi")
        #expect(pub.publicKey == cert.publicKey)
        #expect(pub.secretKey == nil)
        #expect(try pub.roles() == .producer)
        #expect(try pub.sources() == .prefixes(["/province/hanoi", "/ndxp/"]))

        let sec = try Certificate.load(secretFile: paths.secretPath)
        #expect(sec.secretKey == cert.secretKey)
        #expect(try sec.sources().allows("/province/hanoi/so-tttt"))
        #expect(try !sec.sources().allows("/province/hcm"))
    }

    @Test("writing over an existing pair is refused unless asked")
    func noOverwrite() throws {
        let dir = try SecuritySupport.tempDir()
        try Certificate.generate(name: "a").write(toDirectory: dir)
        #expect(throws: CertificateError.self) { try Certificate.generate(name: "a").write(toDirectory: dir) }
        try Certificate.generate(name: "a").write(toDirectory: dir, overwrite: true)
    }

    @Test("a secret key file readable by others is refused with an ssh-like message", arguments: [0o644, 0o640, 0o604, 0o660])
    func tooOpen(mode: Int) throws {
        let dir = try SecuritySupport.tempDir()
        let paths = try Certificate.generate(name: "srv").write(toDirectory: dir)
        chmod(paths.secretPath, mode_t(mode))
        let error = #expect(throws: CertificateError.self) { try Certificate.load(secretFile: paths.secretPath) }
        let text = error.map { "\($0)" } ?? ""
        #expect(text.contains("permissions 0\(String(mode, radix: 8)) for '\(paths.secretPath)' are too open"))
        #expect(text.contains("chmod 600"))
        chmod(paths.secretPath, 0o400)
        _ = try Certificate.load(secretFile: paths.secretPath)
    }

    @Test("a secret file whose keys do not belong together is refused")
    func mismatched() throws {
        let dir = try SecuritySupport.tempDir()
        let a = try Certificate.generate(name: "a"), b = try Certificate.generate(name: "b")
        var franken = a
        franken.secretKey = b.secretKey
        let p = try franken.write(toDirectory: dir)
        #expect(throws: CertificateError.self) { try Certificate.load(secretFile: p.secretPath) }
    }

    @Test("bad names and bad metadata are refused with what to write instead")
    func badInput() throws {
        #expect(throws: CertificateError.self) { try Certificate.generate(name: "../evil") }
        #expect(throws: CertificateError.self) { try Certificate.generate(name: "") }
        #expect(throws: CertificateError.Problem.self) { try Roles(parsing: "admin") }
        #expect(throws: CertificateError.Problem.self) { try Roles(parsing: " , ") }
        #expect(try Roles(parsing: "producer, subscriber") == .all)
        #expect(try SourcePolicy(parsing: "*") == .any)
        let text = """
            metadata
                role = "operator"
            curve
                public-key = "\(try Certificate.generate(name: "x").publicKey.z85)"
            """
        #expect(throws: CertificateError.Problem.self) { try Certificate.parse(text: text, name: "x", requireSecret: false) }
    }

    @Test("ZPL: quoted and bare values, comments, tabs; unterminated quotes are errors")
    func zpl() throws {
        let props = try ZPL.parse("""
            #  comment
            metadata
                role = producer,subscriber   # bare, as pyzmq writes it
            \tsources = '/a,/b'
            curve
                public-key = "abc#def"
            """)
        #expect(props.map(\.key) == ["metadata/role", "metadata/sources", "curve/public-key"])
        #expect(props.map(\.value) == ["producer,subscriber", "/a,/b", "abc#def"])
        #expect(throws: ZPL.SyntaxError.self) { try ZPL.parse("curve\n    public-key = \"abc\n") }
        #expect(throws: ZPL.SyntaxError.self) { try ZPL.parse("curve\n            deep = 1\n") }
        #expect(throws: ZPL.SyntaxError.self) { try ZPL.parse("bad name = 1\n") }
    }

    @Test("certificates made by pyzmq's zmq.auth.create_certificates load here, metadata included")
    func pyzmqToTally() async throws {
        let dir = try SecuritySupport.tempDir()
        let made = try await SecuritySupport.peer(["create", dir, "agency", "role=producer", "sources=/province/hue"])
        try #require(made.status == 0, "\(made.stderr)")
        let pub = try Certificate.load(publicFile: dir + "/agency.key")
        #expect(pub.publicKey.z85 == made.stdout)
        #expect(try pub.roles() == .all)          // pyzmq writes no metadata into the public file
        chmod(dir + "/agency.key_secret", 0o600)
        let sec = try Certificate.load(secretFile: dir + "/agency.key_secret")
        #expect(sec.publicKey.z85 == made.stdout)
        #expect(try sec.roles() == .producer)
        #expect(try sec.sources() == .prefixes(["/province/hue"]))
    }

    @Test("certificates written by tally load in pyzmq's zmq.auth.load_certificate")
    func tallyToPyzmq() async throws {
        let dir = try SecuritySupport.tempDir()
        let cert = try Certificate.generate(name: "ndxp", roles: .subscriber, sources: ["/ndxp/"])
        let p = try cert.write(toDirectory: dir)
        let pub = try await SecuritySupport.peer(["load", p.publicPath])
        #expect(pub.status == 0)
        #expect(pub.stdout == "\(cert.publicKey.z85) -")
        let sec = try await SecuritySupport.peer(["load", p.secretPath])
        #expect(sec.stdout == "\(cert.publicKey.z85) \(cert.secretKey!.z85)")
    }

    @Test("the state directory is created 0700 and its files 0600 whatever the umask")
    func stateDirectory() throws {
        let base = try SecuritySupport.tempDir()
        let old = umask(0)
        defer { umask(old) }
        let state = base + "/var/lib/tally"
        try SecureFiles.createPrivateDirectory(state)
        #expect(SecureFiles.mode(of: state) == 0o700)
        #expect(SecureFiles.mode(of: base + "/var/lib") == 0o700)
        try SecureFiles.writePrivateFile(state + "/checkpoint.bin", [1, 2, 3])
        #expect(SecureFiles.mode(of: state + "/checkpoint.bin") == 0o600)
        #expect(try SecureFiles.read(state + "/checkpoint.bin") == [1, 2, 3])
        chmod(state, 0o755)
        try SecureFiles.createPrivateDirectory(state)
        #expect(SecureFiles.mode(of: state) == 0o700)
        #expect(FileManager.default.createFile(atPath: base + "/file", contents: Data()))
        #expect(throws: SecureFileError.self) { try SecureFiles.createPrivateDirectory(base + "/file") }
    }
}
