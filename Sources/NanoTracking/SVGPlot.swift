import Foundation

/// A self-contained SVG line chart: several series, a legend, axes with 1-2-5 ticks and an optional log-scale y.
///
/// Non-finite points (and, on a log axis, points at or below zero) are skipped and break the line.
/// A series with no drawable point still gets a legend entry but no path. Series with markers are drawn
/// above the rest, so sparse evaluation curves stay visible over noisy training curves.
public struct SVGPlot: Sendable {
    /// One line on the chart.
    public struct Series: Sendable {
        /// The legend entry.
        public var name: String
        public var x: [Double]
        public var y: [Double]
        /// Any SVG colour; nil picks the next colour of the palette.
        public var color: String?
        /// Draws the line dashed (used for validation curves).
        public var dashed: Bool
        /// Draws a dot at every point (useful for sparse series such as evaluations).
        public var showsMarkers: Bool
        /// Stroke width in pixels.
        public var lineWidth: Double

        public init(name: String, x: [Double], y: [Double], color: String? = nil,
                    dashed: Bool = false, showsMarkers: Bool = false, lineWidth: Double = 1.5) {
            self.name = name
            self.x = x
            self.y = y
            self.color = color
            self.dashed = dashed
            self.showsMarkers = showsMarkers
            self.lineWidth = lineWidth
        }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [Series]
    /// Plots y on a base-10 log scale.
    public var logY: Bool
    /// The image size in SVG user units (pixels).
    public var width: Double
    public var height: Double

    public init(title: String, xLabel: String, yLabel: String, series: [Series] = [],
                logY: Bool = false, width: Double = 800, height: Double = 480) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.series = series
        self.logY = logY
        self.width = width
        self.height = height
    }

    /// Colours for series without one: the familiar ten-colour categorical palette (tab10).
    public static let palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                 "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]

    /// The chart as a standalone SVG document.
    public func render() -> String {
        let fontSize = 12.0
        let legendNames = series.map { Self.truncated($0.name, to: 40) }
        let longestName = legendNames.map(\.count).max() ?? 0
        let legendWidth = series.isEmpty ? 0 : min(max(Double(longestName) * fontSize * 0.62 + 48, 100), 300)
        let left = 76.0, top = 44.0, bottom = 58.0, right = 16.0 + legendWidth
        let plotWidth = max(width - left - right, 40), plotHeight = max(height - top - bottom, 40)

        let points = series.map(drawablePoints)
        let allPoints = points.flatMap { $0.compactMap { $0 } }
        let xAxis = ChartAxis.linear(allPoints.map(\.x))
        let yAxis = logY ? ChartAxis.logarithmic(allPoints.map(\.y)) : ChartAxis.linear(allPoints.map(\.y))
        func px(_ x: Double) -> Double { left + xAxis.fraction(x) * plotWidth }
        func py(_ y: Double) -> Double { top + plotHeight - yAxis.fraction(y) * plotHeight }

        var svg = """
        <?xml version="1.0" encoding="UTF-8"?>
        <svg xmlns="http://www.w3.org/2000/svg" width="\(f(width))" height="\(f(height))" \
        viewBox="0 0 \(f(width)) \(f(height))" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="\(f(fontSize))">
        <title>\(Self.escaped(title))</title>
        <rect x="0" y="0" width="\(f(width))" height="\(f(height))" fill="white"/>
        <text x="\(f(left + plotWidth / 2))" y="26" text-anchor="middle" font-size="16" font-weight="bold">\(Self.escaped(title))</text>

        """

        // Grid and tick labels.
        svg += "<g class=\"grid\" stroke=\"#e3e3e3\" stroke-width=\"1\">\n"
        for tick in xAxis.ticks { svg += "<line x1=\"\(f(px(tick)))\" y1=\"\(f(top))\" x2=\"\(f(px(tick)))\" y2=\"\(f(top + plotHeight))\"/>\n" }
        for tick in yAxis.ticks { svg += "<line x1=\"\(f(left))\" y1=\"\(f(py(tick)))\" x2=\"\(f(left + plotWidth))\" y2=\"\(f(py(tick)))\"/>\n" }
        svg += "</g>\n<g class=\"ticks\" fill=\"#333\">\n"
        for tick in xAxis.ticks {
            svg += "<line x1=\"\(f(px(tick)))\" y1=\"\(f(top + plotHeight))\" x2=\"\(f(px(tick)))\" y2=\"\(f(top + plotHeight + 5))\" stroke=\"#333\"/>\n"
            svg += "<text x=\"\(f(px(tick)))\" y=\"\(f(top + plotHeight + 19))\" text-anchor=\"middle\">\(Self.escaped(xAxis.label(tick)))</text>\n"
        }
        for tick in yAxis.ticks {
            svg += "<line x1=\"\(f(left - 5))\" y1=\"\(f(py(tick)))\" x2=\"\(f(left))\" y2=\"\(f(py(tick)))\" stroke=\"#333\"/>\n"
            svg += "<text x=\"\(f(left - 8))\" y=\"\(f(py(tick) + 4))\" text-anchor=\"end\">\(Self.escaped(yAxis.label(tick)))</text>\n"
        }
        svg += "</g>\n"
        svg += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(plotWidth))\" height=\"\(f(plotHeight))\" fill=\"none\" stroke=\"#333\"/>\n"
        svg += "<text x=\"\(f(left + plotWidth / 2))\" y=\"\(f(height - 12))\" text-anchor=\"middle\">\(Self.escaped(xLabel))</text>\n"
        let yLabelX = 18.0, yLabelY = top + plotHeight / 2
        svg += "<text x=\"\(f(yLabelX))\" y=\"\(f(yLabelY))\" text-anchor=\"middle\" transform=\"rotate(-90 \(f(yLabelX)) \(f(yLabelY)))\">\(Self.escaped(yLabel + (logY ? " (log scale)" : "")))</text>\n"
        if allPoints.isEmpty {
            svg += "<text x=\"\(f(left + plotWidth / 2))\" y=\"\(f(top + plotHeight / 2))\" text-anchor=\"middle\" fill=\"#888\">no data</text>\n"
        }

        // Series: one path each, broken at skipped points; isolated points become dots.
        let drawOrder = series.indices.filter { !series[$0].showsMarkers } + series.indices.filter { series[$0].showsMarkers }
        for index in drawOrder {
            let line = series[index]
            let color = Self.escaped(line.color ?? Self.palette[index % Self.palette.count])
            let drawable = points[index]
            guard drawable.contains(where: { $0 != nil }) else { continue }
            var d = "", penDown = false
            var dots: [(x: Double, y: Double)] = []
            for (i, point) in drawable.enumerated() {
                guard let point else { penDown = false; continue }
                d += (penDown ? "L" : "M") + "\(f(px(point.x))) \(f(py(point.y)))"
                let hasNeighbour = (i > 0 && drawable[i - 1] != nil) || (i + 1 < drawable.count && drawable[i + 1] != nil)
                if line.showsMarkers || !hasNeighbour { dots.append(point) }
                penDown = true
            }
            let dash = line.dashed ? " stroke-dasharray=\"6 4\"" : ""
            svg += "<path class=\"series\" data-name=\"\(Self.escaped(line.name))\" d=\"\(d)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"\(f(line.lineWidth))\" stroke-linejoin=\"round\"\(dash)/>\n"
            if !dots.isEmpty {
                svg += "<g fill=\"\(color)\">"
                for dot in dots { svg += "<circle cx=\"\(f(px(dot.x)))\" cy=\"\(f(py(dot.y)))\" r=\"3\" stroke=\"white\" stroke-width=\"0.75\"/>" }
                svg += "</g>\n"
            }
        }

        // Legend, to the right of the plot.
        if !series.isEmpty {
            let x0 = left + plotWidth + 12, rowHeight = 18.0
            svg += "<g class=\"legend\">\n"
            svg += "<rect x=\"\(f(x0))\" y=\"\(f(top))\" width=\"\(f(legendWidth - 4))\" height=\"\(f(Double(series.count) * rowHeight + 10))\" fill=\"white\" stroke=\"#bbb\"/>\n"
            for (index, line) in series.enumerated() {
                let color = Self.escaped(line.color ?? Self.palette[index % Self.palette.count])
                let y = top + 14 + Double(index) * rowHeight
                let dash = line.dashed ? " stroke-dasharray=\"6 4\"" : ""
                svg += "<line x1=\"\(f(x0 + 8))\" y1=\"\(f(y))\" x2=\"\(f(x0 + 34))\" y2=\"\(f(y))\" stroke=\"\(color)\" stroke-width=\"2\"\(dash)/>"
                if line.showsMarkers { svg += "<circle cx=\"\(f(x0 + 21))\" cy=\"\(f(y))\" r=\"3\" fill=\"\(color)\"/>" }
                svg += "<text x=\"\(f(x0 + 40))\" y=\"\(f(y + 4))\">\(Self.escaped(legendNames[index]))</text>\n"
            }
            svg += "</g>\n"
        }
        svg += "</svg>\n"
        return svg
    }

    /// Each point of `line`, or nil where it cannot be drawn (so the line breaks there).
    private func drawablePoints(_ line: Series) -> [(x: Double, y: Double)?] {
        zip(line.x, line.y).map { x, y in
            x.isFinite && y.isFinite && (!logY || y > 0) ? (x, y) : nil
        }
    }

    /// Escapes text for use in SVG character data and attribute values.
    public static func escaped(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.count)
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default: out.append(character)
            }
        }
        return out
    }

    private static func truncated(_ text: String, to length: Int) -> String {
        text.count <= length ? text : String(text.prefix(length - 1)) + "…"
    }
}

/// SVG coordinates with one decimal: plenty at screen resolution, and a tenth of the file size of `description`.
private func f(_ value: Double) -> String {
    let tenths = (value * 10).rounded()
    guard tenths.magnitude < 1e15 else { return "0" }
    let whole = Int(tenths)
    let sign = whole < 0 ? "-" : ""
    let magnitude = whole.magnitude
    return magnitude % 10 == 0 ? "\(sign)\(magnitude / 10)" : "\(sign)\(magnitude / 10).\(magnitude % 10)"
}

// MARK: - Axes and ticks

/// A chart axis: its data range, how values map onto it, and where its ticks go.
struct ChartAxis {
    var lower: Double
    var upper: Double
    var isLog: Bool
    var ticks: [Double]
    /// The spacing of linear ticks; labels get as many decimals as it needs.
    var tickStep: Double

    /// Where `value` falls between the ends of the axis, 0...1.
    func fraction(_ value: Double) -> Double {
        let (v, lo, hi) = isLog ? (log10(value), log10(lower), log10(upper)) : (value, lower, upper)
        return hi > lo ? (v - lo) / (hi - lo) : 0.5
    }

    func label(_ value: Double) -> String {
        isLog ? Self.compactLabel(value) : Self.label(value, step: tickStep, largest: max(lower.magnitude, upper.magnitude))
    }

    /// A linear axis widened to whole multiples of a 1-2-5 tick step.
    static func linear(_ values: [Double], targetTickCount: Int = 6) -> ChartAxis {
        guard var lower = values.min(), var upper = values.max() else {
            return linear([0, 1], targetTickCount: targetTickCount)
        }
        if lower == upper {
            let pad = lower == 0 ? 1 : lower.magnitude * 0.1
            lower -= pad
            upper += pad
        }
        let step = niceStep((upper - lower) / Double(targetTickCount))
        let lowerTick = (lower / step).rounded(.down) * step
        let upperTick = (upper / step).rounded(.up) * step
        return ChartAxis(lower: lowerTick, upper: upperTick, isLog: false,
                    ticks: ticks(from: lowerTick, to: upperTick, step: step), tickStep: step)
    }

    /// A base-10 log axis over the positive `values`, padded a little so lines clear the frame.
    static func logarithmic(_ values: [Double]) -> ChartAxis {
        let positive = values.filter { $0 > 0 }
        guard let minimum = positive.min(), let maximum = positive.max() else {
            return ChartAxis(lower: 1, upper: 10, isLog: true, ticks: [1, 10], tickStep: 1)
        }
        var lo = log10(minimum), hi = log10(maximum)
        let pad = hi > lo ? (hi - lo) * 0.04 : 0.1
        lo -= pad
        hi += pad
        let lower = pow(10, lo), upper = pow(10, hi)
        // Decades when the range spans several, else 1-2-5 or 1...9 within each decade.
        for multipliers in [[1.0], [1, 2, 5], [1, 2, 3, 4, 5, 6, 7, 8, 9]] {
            var candidates: [Double] = []
            for exponent in Int(lo.rounded(.down))...Int(hi.rounded(.up)) {
                for m in multipliers {
                    let value = m * pow(10, Double(exponent))
                    if value >= lower && value <= upper { candidates.append(value) }
                }
            }
            if candidates.count >= 4 || (multipliers.count == 9 && candidates.count >= 2) {
                // Too many ticks in a wide 1...9 set: thin them out.
                let stride = max(1, candidates.count / 10)
                return ChartAxis(lower: lower, upper: upper, isLog: true,
                            ticks: candidates.enumerated().filter { $0.offset % stride == 0 }.map(\.element), tickStep: 1)
            }
        }
        // Less than a factor of ~2 in range: linear 1-2-5 ticks, placed on the log scale.
        let step = niceStep((upper - lower) / 5)
        let linearTicks = ticks(from: (lower / step).rounded(.up) * step, to: (upper / step).rounded(.down) * step, step: step)
        return ChartAxis(lower: lower, upper: upper, isLog: true, ticks: linearTicks.filter { $0 > 0 }, tickStep: step)
    }

    /// The 1, 2 or 5 times a power of ten nearest to `rough` on a log scale, so the tick count stays near the target.
    static func niceStep(_ rough: Double) -> Double {
        guard rough.isFinite, rough > 0 else { return 1 }
        let scale = pow(10, log10(rough).rounded(.down))
        let fraction = rough / scale
        // Thresholds are the geometric midpoints between 1, 2, 5 and 10.
        let nice: Double = fraction >= 50.0.squareRoot() ? 10 : fraction >= 10.0.squareRoot() ? 5 : fraction >= 2.0.squareRoot() ? 2 : 1
        return nice * scale
    }

    /// Multiples of `step` from `lower` to `upper`, computed from integers so they do not drift.
    static func ticks(from lower: Double, to upper: Double, step: Double) -> [Double] {
        guard step > 0, upper >= lower, (upper - lower) / step < 1000 else { return [] }
        let first = Int((lower / step - 1e-9).rounded(.up)), last = Int((upper / step + 1e-9).rounded(.down))
        guard first <= last else { return [] }
        return (first...last).map { Double($0) * step }
    }

    /// A tick label with the decimals `step` needs; k/M/G suffixes for large values, e-notation for tiny steps.
    static func label(_ value: Double, step: Double, largest: Double) -> String {
        if value == 0 { return "0" }
        // k only from 10k up, so step counts such as 2000 stay plain.
        for (unit, suffix) in [(1e9, "G"), (1e6, "M"), (1e3, "k")] where largest >= (unit == 1e3 ? 1e4 : unit) {
            return fixed(value / unit, decimals: decimals(for: step / unit)) + suffix
        }
        let places = decimals(for: step)
        if places > 5 { return scientific(value) }
        return fixed(value, decimals: places)
    }

    /// A short label for a log-axis tick such as 0.001, 2, 5k.
    static func compactLabel(_ value: Double) -> String {
        for (unit, suffix) in [(1e9, "G"), (1e6, "M"), (1e3, "k")] where value.magnitude >= unit {
            return trimmed(fixed(value / unit, decimals: 2)) + suffix
        }
        if value.magnitude < 1e-4 { return scientific(value) }
        return trimmed(fixed(value, decimals: 6))
    }

    private static func decimals(for step: Double) -> Int {
        max(0, -Int((log10(step) + 1e-9).rounded(.down)))
    }

    private static func fixed(_ value: Double, decimals: Int) -> String {
        String(format: "%.\(decimals)f", value)
    }

    private static func scientific(_ value: Double) -> String {
        let exponent = Int(log10(value.magnitude).rounded(.down))
        let mantissa = value / pow(10, Double(exponent))
        return "\(trimmed(fixed(mantissa, decimals: 2)))e\(exponent)"
    }

    private static func trimmed(_ text: String) -> String {
        guard text.contains(".") else { return text }
        var out = text
        while out.hasSuffix("0") { out.removeLast() }
        if out.hasSuffix(".") { out.removeLast() }
        return out
    }
}

// MARK: - Standard charts for training runs

extension SVGPlot {
    /// Train loss (solid) and validation loss (dashed, thicker, a dot at each evaluation) of every run, overlaid.
    public static func lossChart(runs: [(name: String, metrics: MetricsFile)], x: XAxis = .step, logY: Bool = false) -> String {
        var series: [Series] = []
        for (index, run) in runs.enumerated() {
            let color = palette[index % palette.count]
            let train = run.metrics.series("train_loss", against: x)
            let val = run.metrics.series("val_loss", against: x)
            series.append(Series(name: "\(run.name) train", x: train.x, y: train.y, color: color))
            series.append(Series(name: "\(run.name) val", x: val.x, y: val.y, color: color, dashed: true,
                                 showsMarkers: true, lineWidth: 2.25))
        }
        return SVGPlot(title: "Loss vs \(x.label)", xLabel: x.label, yLabel: "loss", series: series, logY: logY).render()
    }

    /// The learning rate schedule of every run.
    public static func learningRateChart(runs: [(name: String, metrics: MetricsFile)], x: XAxis = .step) -> String {
        chart(of: "lr", runs: runs, x: x, title: "Learning rate", yLabel: "learning rate")
    }

    /// Training throughput (tokens per second) of every run.
    public static func throughputChart(runs: [(name: String, metrics: MetricsFile)], x: XAxis = .step) -> String {
        chart(of: "tokens_per_s", runs: runs, x: x, title: "Throughput", yLabel: "tokens/s")
    }

    /// One line per run for a single metrics field.
    public static func chart(of field: String, runs: [(name: String, metrics: MetricsFile)], x: XAxis = .step,
                             title: String, yLabel: String, logY: Bool = false) -> String {
        let series = runs.enumerated().map { index, run in
            let values = run.metrics.series(field, against: x)
            return Series(name: run.name, x: values.x, y: values.y, color: palette[index % palette.count])
        }
        return SVGPlot(title: title, xLabel: x.label, yLabel: yLabel, series: series, logY: logY).render()
    }

    /// The file names `writeStandardPlots` writes, in order.
    public static let standardPlotNames = ["loss_vs_step.svg", "loss_vs_tokens.svg", "lr.svg", "tokens_per_s.svg"]

    /// Writes loss (vs step and vs tokens), learning rate and throughput charts into `folder`, creating it if needed.
    /// - Returns: the paths written, in the order of `standardPlotNames`.
    public static func writeStandardPlots(runs: [(name: String, metrics: MetricsFile)], to folder: String) throws -> [String] {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let charts = [
            lossChart(runs: runs, x: .step),
            lossChart(runs: runs, x: .tokens),
            learningRateChart(runs: runs),
            throughputChart(runs: runs),
        ]
        var paths: [String] = []
        for (name, svg) in zip(standardPlotNames, charts) {
            let path = (folder as NSString).appendingPathComponent(name)
            try Data(svg.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
            paths.append(path)
        }
        return paths
    }

    /// Converts an SVG file to a PNG beside it with `rsvg-convert` or ImageMagick, whichever is on PATH.
    /// - Returns: the PNG's path, or nil when no converter is installed or conversion failed. Never throws.
    @discardableResult
    public static func convertToPNG(_ svgPath: String) -> String? {
        let pngPath = (svgPath.hasSuffix(".svg") ? String(svgPath.dropLast(4)) : svgPath) + ".png"
        let converters: [(tool: String, arguments: [String])] = [
            ("rsvg-convert", ["--format", "png", "--output", pngPath, svgPath]),
            ("magick", [svgPath, pngPath]),
            ("convert", [svgPath, pngPath]),
        ]
        for converter in converters {
            guard let executable = findExecutable(converter.tool) else { continue }
            try? FileManager.default.removeItem(atPath: pngPath)
            if run(executable, converter.arguments, timeout: 60),
               let size = (try? FileManager.default.attributesOfItem(atPath: pngPath))?[.size] as? NSNumber,
               size.intValue > 0 {
                return pngPath
            }
        }
        return nil
    }

    private static func findExecutable(_ name: String) -> String? {
        let searchPath = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in searchPath.split(separator: ":") {
            let candidate = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// Runs a tool quietly; true when it exits with status 0 before the timeout.
    private static func run(_ executable: String, _ arguments: [String], timeout: TimeInterval) -> Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return false }
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning {
            if Date() > deadline {
                process.terminate()
                process.waitUntilExit()
                return false
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return process.terminationReason == .exit && process.terminationStatus == 0
    }
}
