/// The event catalog of contract v1 (`shared/spec/events.md`) as data.
///
/// The decoder validates every event's `data` against this table and the pipeline
/// compiler resolves field names through it, so a typo in a pipeline is an error at
/// `tally check` time rather than an indicator that silently stays at zero.
public struct Catalog: Sendable {
    /// The type of one `data` field.
    public enum FieldKind: Sendable, Equatable {
        /// `str`: a non-empty string; `allowed` restricts it to an enumeration when non-nil.
        case string(allowed: [String]?)
        /// `int`: an integer (may exceed 2^32); must fit in Int64.
        case int
        /// `num`: any JSON number.
        case number
        /// `bool`.
        case bool
        /// `[str]`: an array of strings.
        case stringArray
    }

    /// One field of an event type's `data`.
    public struct Field: Sendable, Equatable {
        public let name: String
        public let kind: FieldKind
        public let required: Bool
        public init(_ name: String, _ kind: FieldKind, required: Bool = true) {
            self.name = name
            self.kind = kind
            self.required = required
        }
    }

    /// One event type: its name and its `data` fields, in a fixed order. A field's
    /// position in `fields` is its slot in ``Event/fields``.
    public struct EventType: Sendable, Equatable {
        public let name: String
        public let fields: [Field]
        public func fieldIndex(_ name: String) -> Int? { fields.firstIndex { $0.name == name } }
    }

    public let types: [EventType]
    private let index: [String: Int]

    /// - Precondition: no type has more than ``EventFields/capacity`` fields (events store
    ///   them inline), type names are unique, and `tally.balance` (the control type) is not used.
    public init(types: [EventType]) {
        for t in types {
            precondition(t.fields.count <= EventFields.capacity,
                         "event type \(t.name) has more than \(EventFields.capacity) data fields")
            precondition(t.name != "tally.balance", "tally.balance is the reserved control event type")
        }
        precondition(Set(types.map(\.name)).count == types.count, "event type names must be unique")
        self.types = types
        var index: [String: Int] = [:]
        for (i, t) in types.enumerated() { index[t.name] = i }
        self.index = index
    }

    /// The position of a type in ``types``, or nil for a type outside the catalog.
    public func typeIndex(_ name: String) -> Int? { index[name] }

    /// Contract v1.
    public static let v1 = Catalog(types: [
        // NDXP
        EventType(name: "ndxp.endpoint.registered", fields: [
            Field("endpoint", .string(allowed: nil)), Field("agency", .string(allowed: nil)),
        ]),
        EventType(name: "ndxp.endpoint.retired", fields: [Field("endpoint", .string(allowed: nil))]),
        EventType(name: "ndxp.transaction", fields: [
            Field("endpoint", .string(allowed: nil)), Field("consumer", .string(allowed: nil)),
            Field("provider", .string(allowed: nil)), Field("status", .string(allowed: ["ok", "error"])),
        ]),
        // Online public services
        EventType(name: "dvc.procedure.listed", fields: [
            Field("procedure", .string(allowed: nil)), Field("authority", .string(allowed: nil)),
            Field("level", .string(allowed: ["full", "partial", "none"])), Field("essential", .bool),
            Field("programs", .stringArray),
        ]),
        EventType(name: "dvc.account.registered", fields: [Field("account", .string(allowed: nil))]),
        EventType(name: "dvc.dossier.submitted", fields: [
            Field("dossier", .string(allowed: nil)), Field("procedure", .string(allowed: nil)),
            Field("channel", .string(allowed: ["online", "offline"])), Field("via_national_portal", .bool),
            Field("province", .string(allowed: nil)),
        ]),
        EventType(name: "dvc.payment.completed", fields: [
            Field("payment", .string(allowed: nil)), Field("amount_vnd", .int),
        ]),
        // Institutions and policy
        EventType(name: "policy.document.issued", fields: [
            Field("document", .string(allowed: nil)),
            Field("kind", .string(allowed: ["decree", "decision", "directive", "plan", "fee-support", "other"])),
            Field("issuer", .string(allowed: nil)),
            Field("issuer_level", .string(allowed: ["government", "ministry", "province"])),
            Field("plan_year", .int, required: false),
        ]),
        // Digital infrastructure
        EventType(name: "infra.fiber.reported", fields: [
            Field("province", .string(allowed: nil)), Field("households", .int), Field("fiber_households", .int),
        ]),
        EventType(name: "infra.commune.reported", fields: [
            Field("commune", .string(allowed: nil)), Field("fiber", .bool),
        ]),
        // Digital economy and society
        EventType(name: "economy.it.reported", fields: [
            Field("enterprise", .string(allowed: nil)), Field("revenue_usd", .number), Field("export_usd", .number),
        ]),
        EventType(name: "mobilemoney.customer.activated", fields: [
            Field("customer", .string(allowed: nil)), Field("area", .string(allowed: ["rural", "urban"])),
        ]),
        EventType(name: "health.facility.reported", fields: [
            Field("facility", .string(allowed: nil)), Field("cashless", .bool),
        ]),
        EventType(name: "finance.adult_accounts.reported", fields: [
            Field("adults", .int), Field("adults_with_account", .int),
        ]),
        EventType(name: "welfare.payment.disbursed", fields: [
            Field("beneficiary", .string(allowed: nil)), Field("via_account", .bool), Field("amount_vnd", .int),
        ]),
        // Cybersecurity
        EventType(name: "security.system.classified", fields: [
            Field("system", .string(allowed: nil)), Field("owner", .string(allowed: nil)),
            Field("level_approved", .bool),
        ]),
        EventType(name: "security.incident", fields: [
            Field("incident", .string(allowed: nil)), Field("system", .string(allowed: nil)),
        ]),
    ])
}
