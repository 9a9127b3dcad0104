// MARK: - Who reports: provinces, ministries, agencies

/// The reporting units of the simulated country, as of April 2024 (63 provinces and
/// centrally-run cities, 22 ministries and ministerial-level agencies).
///
/// Populations (thousands, 2023, rounded) weight dossiers, households and communes so that
/// Hà Nội and TP Hồ Chí Minh dominate as they do in the real streams. Identifiers are
/// ASCII slugs because they travel as event fields and `by` keys.
enum Gazetteer {
    struct Province: Sendable {
        let slug: String
        /// Two-letter code used in dossier numbers.
        let code: String
        let population: Int
    }

    static let provinces: [Province] = [
        ("ha-noi", 8_435), ("ho-chi-minh", 9_456), ("hai-phong", 2_088), ("da-nang", 1_246),
        ("can-tho", 1_258), ("an-giang", 1_906), ("ba-ria-vung-tau", 1_188), ("bac-giang", 1_922),
        ("bac-kan", 326), ("bac-lieu", 925), ("bac-ninh", 1_488), ("ben-tre", 1_298),
        ("binh-dinh", 1_505), ("binh-duong", 2_763), ("binh-phuoc", 1_032), ("binh-thuan", 1_256),
        ("ca-mau", 1_207), ("cao-bang", 545), ("dak-lak", 1_918), ("dak-nong", 670),
        ("dien-bien", 639), ("dong-nai", 3_255), ("dong-thap", 1_600), ("gia-lai", 1_591),
        ("ha-giang", 893), ("ha-nam", 878), ("ha-tinh", 1_324), ("hai-duong", 1_946),
        ("hau-giang", 729), ("hoa-binh", 875), ("hung-yen", 1_290), ("khanh-hoa", 1_254),
        ("kien-giang", 1_751), ("kon-tum", 580), ("lai-chau", 482), ("lam-dong", 1_332),
        ("lang-son", 802), ("lao-cai", 770), ("long-an", 1_735), ("nam-dinh", 1_876),
        ("nghe-an", 3_419), ("ninh-binh", 1_010), ("ninh-thuan", 599), ("phu-tho", 1_516),
        ("phu-yen", 877), ("quang-binh", 913), ("quang-nam", 1_519), ("quang-ngai", 1_245),
        ("quang-ninh", 1_363), ("quang-tri", 650), ("soc-trang", 1_199), ("son-la", 1_295),
        ("tay-ninh", 1_188), ("thai-binh", 1_878), ("thai-nguyen", 1_335), ("thanh-hoa", 3_722),
        ("thua-thien-hue", 1_166), ("tien-giang", 1_790), ("tra-vinh", 1_019), ("tuyen-quang", 805),
        ("vinh-long", 1_028), ("vinh-phuc", 1_197), ("yen-bai", 838),
    ].enumerated().map { i, p in
        Province(slug: p.0, code: "P" + (i + 1 < 10 ? "0" : "") + String(i + 1), population: p.1)
    }

    /// Ministries and ministerial-level agencies (the report's "22 bộ, ngành").
    static let ministries: [String] = [
        "bo-cong-an", "bo-quoc-phong", "bo-ngoai-giao", "bo-noi-vu", "bo-tu-phap",
        "bo-ke-hoach-dau-tu", "bo-tai-chinh", "bo-cong-thuong", "bo-nong-nghiep-ptnt",
        "bo-giao-thong-van-tai", "bo-xay-dung", "bo-tai-nguyen-moi-truong", "bo-thong-tin-truyen-thong",
        "bo-lao-dong-tbxh", "bo-van-hoa-tt-dl", "bo-khoa-hoc-cong-nghe", "bo-giao-duc-dao-tao",
        "bo-y-te", "uy-ban-dan-toc", "ngan-hang-nha-nuoc", "thanh-tra-chinh-phu", "van-phong-chinh-phu",
    ]

    /// Other agencies connected to NDXP besides ministries and provincial people's committees.
    static let otherAgencies: [String] = [
        "bao-hiem-xa-hoi-vn", "tong-cuc-thue", "tong-cuc-hai-quan", "kho-bac-nha-nuoc",
        "toa-an-nhan-dan-toi-cao", "vien-kiem-sat-nhan-dan-toi-cao", "kiem-toan-nha-nuoc",
        "van-phong-quoc-hoi", "vien-han-lam-khcn", "dhqg-ha-noi", "dai-truyen-hinh-vn", "thong-tan-xa-vn",
    ]

    /// Every NDXP agency: ministries, then `ubnd-<province>`, then the others (97 in all).
    static let agencies: [String] = ministries + provinces.map { "ubnd-" + $0.slug } + otherAgencies

    static func provinceIndex(_ slug: String) -> Int? { provinces.firstIndex { $0.slug == slug } }
}
