import Testing
@testable import TallyEngine

@Suite("Simulator building blocks: exact allocation and lazy flows")
struct SimulatorSourceTests {
    @Test("largest-remainder allocation always sums to the total and follows the weights")
    func largestRemainder() {
        for total in [0, 1, 7, 30 * 1_400, 2_800_000] {
            let parts = Allocation.largestRemainder(total, weights: [1, 0.75, 0.6, 1, 1, 0.55, 2.5])
            #expect(parts.reduce(0, +) == total)
            if total >= 1_000 { #expect(parts[6] > parts[0] && parts[0] > parts[5]) }
        }
        #expect(Allocation.largestRemainder(5, weights: [0, 0]) == [5, 0])
    }

    @Test("Bresenham choice picks exactly k of n, and chosenBefore counts them")
    func chosen() {
        for (k, n) in [(0, 10), (18, 47), (23, 60), (47, 47), (383, 1000)] {
            var count = 0
            for j in 0..<n {
                #expect(Allocation.chosenBefore(j, k, n) == count)
                if Allocation.chosen(j, k, n) { count += 1 }
            }
            #expect(count == k)
        }
    }

    @Test("the affine map is a bijection of 0..<n")
    func affine() {
        for n in [1, 2, 63, 1_000, 3_110, 6_320] {
            let (a, b) = Allocation.affine(seed: UInt64(n), n: n)
            #expect(Set((0..<n).map { (a * $0 + b) % n }).count == n)
        }
    }

    @Test("a flow emits exactly its day counts, in time order, within each day, ending at 23:59:59 when pinned")
    func flow() {
        let first = SimTime.day(2024, 4, 28)
        var flow = FlowSource(kind: .transactions, stream: 9, seed: 1, firstDay: first, dayCounts: [500, 0, 300],
                              rhythm: .machine, pinLast: true)
        #expect(flow.total == 800)
        var perDay = [Int](repeating: 0, count: 3)
        var last = Micros.min
        while let t = flow.nextTime {
            #expect(t >= last)
            last = t
            let day = SimTime.localDay(of: t)
            #expect(day == flow.currentDay)
            perDay[day - first] += 1
            #expect(t <= SimTime.micros(day: day, millis: 86_399_000))
            flow.advance()
        }
        #expect(perDay == [500, 0, 300])
        #expect(last == SimTime.micros(2024, 4, 30, 23, 59, 59))
        #expect(flow.seq == 800)
    }

    @Test("the 2024 payment amounts are whole thousands of VND between 5,000 and about 2 million")
    func paymentAmounts() {
        for j in 0..<10_000 {
            let a = April2024Plan.paymentAmount(seed: Simulator.defaultSeed, j)
            #expect(a % 1000 == 0 && a >= 5_000 && a <= 2_005_000)
        }
    }

    @Test("snapping a count to a printable share finds the smallest count whose share rounds as printed")
    func snap() {
        #expect(April2024Plan.snapShare(atLeast: 1, share: 0.383, decimals: 1) == (47, 18))
        let (n, k) = April2024Plan.snapShare(atLeast: 5_000, share: 0.383, decimals: 1)
        #expect(n == 5_000 && ((1000 * Double(k) / Double(n)).rounded()) == 383)
        let y = April2024Plan.yearAgo(of: 36_300_000, growth: 0.177, decimals: 1)
        #expect((Double(36_300_000 - y) / Double(y) * 1000).rounded() == 177)
    }
}
