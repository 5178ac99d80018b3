import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
@testable import NanoTracking

private let sampleMetrics = """
{"eval_train_loss":4.17,"step":0,"tokens":0,"val_loss":4.18}
{"grad_norm":5.3,"lr":0.0001,"mfu":0.28,"ms_per_iter":107.9,"step":1,"tokens":768,"tokens_per_s":7114.8,"train_loss":4.16}
{"grad_norm":6.4,"lr":0.0002,"mfu":0.47,"ms_per_iter":63.3,"step":2,"tokens":1536,"tokens_per_s":12119.7,"train_loss":4.02}
{"aux_loss":2.7,"lr":0.0003,"moe0.tokens_per_expert":[56,202,79,240],"moe0.dropped_fraction":0.19,"step":3,"tokens":2304,"tokens_per_s":null,"train_loss":3.90}
{"eval_train_loss":3.5,"step":3,"tokens":2304,"val_loss":3.6,"hellaswag_acc_norm":0.27}
{"grad_norm":1.1,"lr":0.0004,"step":4,"tokens":3072,"tokens_per_s":11000,"train_lo
"""

/// Element names and attributes of a document, or nil when it is not well-formed XML.
private final class ElementCollector: NSObject, XMLParserDelegate {
    var elements: [(name: String, attributes: [String: String])] = []
    var text = ""
    func parser(_ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?,
                qualifiedName: String?, attributes: [String: String] = [:]) {
        elements.append((elementName, attributes))
    }
    func parser(_ parser: XMLParser, foundCharacters string: String) { text += string }

    static func parse(_ svg: String) -> ElementCollector? {
        let collector = ElementCollector()
        let parser = XMLParser(data: Data(svg.utf8))
        parser.delegate = collector
        return parser.parse() ? collector : nil
    }
}

private func seriesPaths(_ svg: String) throws -> [[String: String]] {
    let document = try #require(ElementCollector.parse(svg), "SVG is not well-formed XML")
    return document.elements.filter { $0.name == "path" && $0.attributes["class"] == "series" }.map(\.attributes)
}

// MARK: - metrics.jsonl

@Test func parsesStepAndEvalLinesAndSkipsTruncatedLastLine() throws {
    let metrics = MetricsFile(contents: sampleMetrics, path: "runs/x/metrics.jsonl")
    #expect(metrics.records.count == 5)
    #expect(metrics.records.map(\.step) == [0, 1, 2, 3, 3])
    #expect(metrics.records[0].isEval && !metrics.records[1].isEval)
    #expect(metrics.records[2]["train_loss"] == 4.02)
    #expect(metrics.records[4]["hellaswag_acc_norm"] == 0.27)
    #expect(metrics.warnings.count == 1)
    #expect(metrics.warnings[0].hasPrefix("runs/x/metrics.jsonl:6:"))
}

@Test func keepsArrayFieldsApartAndReadsNullAsNaN() {
    let record = MetricsFile(contents: sampleMetrics).records[3]
    #expect(record.arrays["moe0.tokens_per_expert"] == [56, 202, 79, 240])
    #expect(record.fields["moe0.tokens_per_expert"] == nil)
    #expect(record.fields["moe0.dropped_fraction"] == 0.19)
    #expect(record.fields["tokens_per_s"]?.isNaN == true)
}

@Test func skipsGarbageAndStepLessLinesWithWarnings() {
    let text = "not json\n[1,2]\n{\"loss\": 1}\n\n{\"step\": 5, \"train_loss\": 2, \"note\": \"hi\", \"flag\": true}\n"
    let metrics = MetricsFile(contents: text)
    #expect(metrics.records.map(\.step) == [5])
    #expect(metrics.records[0].fields == ["step": 5, "train_loss": 2])
    #expect(metrics.warnings.map { $0.split(separator: ":")[1] } == ["1", "2", "3"])
}

@Test func readsFileFromDiskAndThrowsForMissingFile() throws {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("metrics-\(UUID()).jsonl").path
    try Data(sampleMetrics.utf8).write(to: URL(fileURLWithPath: path))
    defer { try? FileManager.default.removeItem(atPath: path) }
    let metrics = try MetricsFile(path: path)
    #expect(metrics.records.count == 5)
    #expect(metrics.warnings.first?.contains(path) == true)
    #expect(throws: MetricsFileError.self) { try MetricsFile(path: path + ".missing") }
}

@Test func seriesAgainstStepAndTokens() {
    let metrics = MetricsFile(contents: sampleMetrics)
    let train = metrics.series("train_loss")
    #expect(train.x == [1, 2, 3])
    #expect(train.y == [4.16, 4.02, 3.90])
    let val = metrics.series("val_loss", against: .tokens)
    #expect(val.x == [0, 2304])
    #expect(val.y == [4.18, 3.6])
    #expect(metrics.series("no_such_field").x.isEmpty)
    #expect(metrics.lastStep == 3 && metrics.lastEvalStep == 3 && metrics.bestValLoss == 3.6 && metrics.lastTokens == 2304)
}

@Test func resumedRunsRepeatedStepsKeepTheLaterValue() {
    let text = """
    {"step":1,"train_loss":3.0}
    {"step":2,"train_loss":2.9}
    {"step":3,"train_loss":2.8}
    {"step":2,"train_loss":2.5}
    {"step":3,"train_loss":2.4}
    """
    let series = MetricsFile(contents: text).series("train_loss")
    #expect(series.x == [1, 2, 3])
    #expect(series.y == [3.0, 2.5, 2.4])
}

// MARK: - Ticks

@Test func niceStepsAreOneTwoOrFiveTimesAPowerOfTen() {
    #expect(ChartAxis.niceStep(0.8) == 1)
    #expect(ChartAxis.niceStep(1.3) == 1)
    #expect(ChartAxis.niceStep(3) == 2)
    #expect(ChartAxis.niceStep(333) == 500)
    #expect(ChartAxis.niceStep(256_000) == 200_000)
    #expect(abs(ChartAxis.niceStep(0.00017) - 0.0002) < 1e-12)
}

@Test func linearAxisWidensToWholeTicks() {
    let axis = ChartAxis.linear([1, 2000])
    #expect(axis.lower == 0 && axis.upper == 2000)
    #expect(axis.ticks == [0, 500, 1000, 1500, 2000])
    #expect(axis.ticks.map(axis.label) == ["0", "500", "1000", "1500", "2000"])
    let loss = ChartAxis.linear([1.53, 4.18])
    #expect(loss.ticks.first == 1.5 && loss.ticks.last == 4.5)
    #expect(loss.label(2.5) == "2.5")
    let single = ChartAxis.linear([3, 3])
    #expect(single.lower < 3 && single.upper > 3)
}

@Test func tickLabelsUseSuffixesForLargeValuesAndDecimalsForSmallSteps() {
    let tokens = ChartAxis.linear([0, 1_536_000])
    #expect(tokens.ticks.map(tokens.label).last == "1.6M")
    let lr = ChartAxis.linear([0.0001, 0.001])
    #expect(lr.label(0.0004) == "0.0004")
    #expect(ChartAxis.label(0.00000002, step: 0.00000001, largest: 0.0000001) == "2e-8")
}

@Test func logAxisPutsTicksOnDecadesOrOneTwoFive() {
    let wide = ChartAxis.logarithmic([0.001, 10])
    #expect(wide.isLog)
    #expect(wide.ticks == [0.001, 0.01, 0.1, 1, 10])
    #expect(wide.ticks.map(wide.label) == ["0.001", "0.01", "0.1", "1", "10"])
    let narrow = ChartAxis.logarithmic([1.5, 4.2])
    #expect(!narrow.ticks.isEmpty && narrow.ticks.allSatisfy { $0 >= narrow.lower && $0 <= narrow.upper })
    #expect(abs(wide.fraction(0.1) - 0.5) < 0.01)
}

// MARK: - SVG

@Test func svgIsWellFormedWithOnePathPerSeriesAndLegendNames() throws {
    let plot = SVGPlot(title: "Loss <A&B>", xLabel: "step", yLabel: "loss", series: [
        .init(name: "run \"one\" train", x: [0, 1, 2], y: [3, 2, 1]),
        .init(name: "run <two> val", x: [0, 2], y: [3.5, 1.5], dashed: true, showsMarkers: true),
    ])
    let svg = plot.render()
    let paths = try seriesPaths(svg)
    #expect(paths.count == 2)
    #expect(paths.map { $0["data-name"] } == ["run \"one\" train", "run <two> val"])
    #expect(paths[1]["stroke-dasharray"] != nil)
    let text = try #require(ElementCollector.parse(svg)).text
    #expect(text.contains("run \"one\" train") && text.contains("run <two> val") && text.contains("Loss <A&B>"))
}

@Test func nonFiniteValuesBreakTheLineAndSinglePointsGetADot() throws {
    let plot = SVGPlot(title: "t", xLabel: "x", yLabel: "y", series: [
        .init(name: "gappy", x: [0, 1, 2, 3, 4], y: [1, 2, .nan, 4, .infinity]),
        .init(name: "single", x: [5], y: [2]),
        .init(name: "nothing", x: [1, 2], y: [.nan, .nan]),
    ])
    let svg = plot.render()
    let paths = try seriesPaths(svg)
    #expect(paths.count == 2)
    let gappy = try #require(paths.first { $0["data-name"] == "gappy" }?["d"])
    #expect(gappy.filter { $0 == "M" }.count == 2)
    #expect(!svg.contains("nan") && !svg.contains("inf"))
    let document = try #require(ElementCollector.parse(svg))
    #expect(document.elements.filter { $0.name == "circle" }.count >= 1)
    #expect(document.text.contains("nothing"))
}

@Test func emptyChartStillRendersAxesAndSaysNoData() throws {
    let svg = SVGPlot(title: "empty", xLabel: "x", yLabel: "y").render()
    #expect(try seriesPaths(svg).isEmpty)
    #expect(svg.contains("no data"))
    #expect(try seriesPaths(SVGPlot.lossChart(runs: [], x: .tokens)).isEmpty)
}

@Test func logScaleSkipsNonPositiveValuesAndLabelsTheAxis() throws {
    let plot = SVGPlot(title: "log", xLabel: "step", yLabel: "loss", series: [
        .init(name: "a", x: [0, 1, 2, 3], y: [10, 1, 0, 0.01]),
    ], logY: true)
    let svg = plot.render()
    let d = try #require(try seriesPaths(svg).first?["d"])
    #expect(d.filter { $0 == "M" }.count == 2)
    #expect(svg.contains("(log scale)"))
    let labels = try #require(ElementCollector.parse(svg)).text
    #expect(labels.contains("0.01") && labels.contains("0.1") && labels.contains("10"))
}

@Test func lossChartOverlaysTrainAndValPerRun() throws {
    let metrics = MetricsFile(contents: sampleMetrics)
    let svg = SVGPlot.lossChart(runs: [("alpha", metrics), ("beta", metrics)], x: .tokens)
    let names = try seriesPaths(svg).compactMap { $0["data-name"] }
    // Validation curves (with markers) are drawn after, i.e. above, the training curves.
    #expect(names == ["alpha train", "beta train", "alpha val", "beta val"])
    #expect(svg.contains("Loss vs tokens"))
    let lr = try seriesPaths(SVGPlot.learningRateChart(runs: [("alpha", metrics)]))
    #expect(lr.count == 1)
    // Step 3's tokens_per_s is null: the line breaks there.
    let throughput = try #require(try seriesPaths(SVGPlot.throughputChart(runs: [("alpha", metrics)])).first?["d"])
    #expect(throughput.filter { $0 == "M" }.count == 1)
}

@Test func writesTheStandardPlotsIntoANewFolder() throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("plots-\(UUID())/nested").path
    defer { try? FileManager.default.removeItem(atPath: (folder as NSString).deletingLastPathComponent) }
    let paths = try SVGPlot.writeStandardPlots(runs: [("alpha", MetricsFile(contents: sampleMetrics))], to: folder)
    #expect(paths.map { ($0 as NSString).lastPathComponent } == SVGPlot.standardPlotNames)
    for path in paths {
        let svg = try String(contentsOfFile: path, encoding: .utf8)
        #expect(ElementCollector.parse(svg) != nil)
    }
}

@Test func pngConversionNeverFailsTheCaller() throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("png-\(UUID())").path
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let svgPath = folder + "/chart.svg"
    try Data(SVGPlot(title: "t", xLabel: "x", yLabel: "y", series: [.init(name: "a", x: [0, 1], y: [0, 1])]).render().utf8)
        .write(to: URL(fileURLWithPath: svgPath))
    // With a converter this yields a PNG; without one, nil. Either way it returns.
    if let png = SVGPlot.convertToPNG(svgPath) {
        let bytes = try #require(FileManager.default.contents(atPath: png))
        #expect(bytes.starts(with: [0x89, 0x50, 0x4E, 0x47]))
    }
    #expect(SVGPlot.convertToPNG(folder + "/missing.svg") == nil)
}

@Suite struct ProgressBarTests {
    @Test func lineShowsFractionCountsAndETA() {
        let bar = ProgressBar("train", total: 200, unit: "steps", terminal: false)
        bar.update(50)
        let line = bar.line()
        #expect(line.hasPrefix("train [######------------------]  25% 50/200 steps"))
        #expect(line.contains("ETA "))
        bar.update(500)   // clamped
        #expect(bar.line().contains("100% 200/200"))
    }
}
