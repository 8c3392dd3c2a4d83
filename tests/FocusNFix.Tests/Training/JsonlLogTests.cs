using System.Globalization;
using System.Text.Json;
using FocusNFix.Training;
using Xunit;

namespace FocusNFix.Tests.Training;

public class JsonlLogTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("fnf-jsonl-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void LinesHaveTimeNumbersAndNullForNonFinite()
    {
        var path = Path.Combine(_dir, "log.jsonl");
        JsonlLog.Append(path, new TrainStepLog(0, double.NaN, 0.5, 1.25, 0.1, 0.2, double.PositiveInfinity, 1e-3, true, 1));
        JsonlLog.Append(path, new TrainStepLog(1, 0.75, 0.5, 1.25, 0.1, 0.2, 3.5, 2e-3, false, 1));
        var lines = File.ReadAllLines(path);
        Assert.Equal(2, lines.Length);
        Assert.DoesNotContain("NaN", lines[0]);
        Assert.DoesNotContain("Infinity", lines[0]);
        foreach (var line in lines)
        {
            using var doc = JsonDocument.Parse(line);
            var time = doc.RootElement.GetProperty("time").GetString()!;
            Assert.EndsWith("Z", time);
            var t = DateTimeOffset.Parse(time, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal);
            Assert.True(Math.Abs((DateTimeOffset.UtcNow - t).TotalSeconds) < 60, time);
            Assert.Equal(JsonValueKind.Number, doc.RootElement.GetProperty("learning_rate").ValueKind);
            Assert.Equal(JsonValueKind.Number, doc.RootElement.GetProperty("step").ValueKind);
        }
        using (var first = JsonDocument.Parse(lines[0]))
        {
            Assert.Equal(JsonValueKind.Null, first.RootElement.GetProperty("loss").ValueKind);
            Assert.Equal(JsonValueKind.Null, first.RootElement.GetProperty("grad_norm").ValueKind);
            Assert.Equal(0.5, first.RootElement.GetProperty("reward").GetDouble());
            Assert.True(first.RootElement.GetProperty("skipped").GetBoolean());
        }
        var rows = JsonlLog.Read<TrainStepLog>(path);
        Assert.True(double.IsNaN(rows[0].Loss));
        Assert.True(double.IsNaN(rows[0].GradNorm)); // null carries no sign: Inf reads back as NaN
        Assert.Equal(new TrainStepLog(1, 0.75, 0.5, 1.25, 0.1, 0.2, 3.5, 2e-3, false, 1), rows[1]);
    }

    [Fact]
    public void ReadsOlderLinesAndNamesTheLineOfABadOne()
    {
        var path = Path.Combine(_dir, "old.jsonl");
        File.WriteAllText(path, "{\"step\":0,\"loss\":\"NaN\",\"reward\":1,\"constraint\":0,\"change_inside\":0,\"change_outside\":0,\"grad_norm\":1,\"learning_rate\":0.001,\"skipped\":true,\"skipped_total\":1}\n\n");
        Assert.True(double.IsNaN(JsonlLog.Read<TrainStepLog>(path).Single().Loss));
        File.AppendAllText(path, "{\"step\":1,\"loss\":\"oops\"}\n");
        var e = Assert.Throws<InvalidInputException>(() => JsonlLog.Read<TrainStepLog>(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("line 3", e.Message);
    }
}
