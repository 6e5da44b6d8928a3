using HcService.Contract.Config;
using HcService.Contract.Jobs;

namespace HcService.Core.Tests;

public class JobSpecTests
{
    const string Shortest = """
        { "model": { "preset": "olmo-1b" }, "architecture": "dense", "connection": { "type": "dynamic-hc", "rate": 4 }, "training": { "tokenBudget": "50B" } }
        """;

    [Fact]
    public void TheFourRequiredFieldsAreEnoughAndDefaultsFollowThePaper()
    {
        var plan = JobPlan.Resolve(JobSpec.Parse(Shortest), DeviceKind.Cuda);
        Assert.Equal(50_000_000_000, plan.Training.TokenBudget);
        Assert.Equal(2048L * 2048, plan.Training.BatchTokens);
        Assert.Equal(50_000_000_000 / (2048L * 2048), plan.Training.Steps);
        Assert.Equal(4e-4, plan.Training.Lr);
        Assert.Equal(1192, plan.Training.WarmupSteps);   // min(2000 (OLMo-1B), 10% of 11,920 steps)
        Assert.Equal(LrScheduleKind.Cosine, plan.Training.Schedule);
        Assert.Equal(0.1, plan.Training.MinLrRatio);
        Assert.Equal(0.1, plan.Training.WeightDecay);
        Assert.Equal(1.0, plan.Training.GradClip);
        Assert.Equal(Precision.Bf16, plan.Training.Precision);
        Assert.Equal(256, plan.Training.Accumulation);   // 4M tokens / (8 x 2048)
        Assert.Equal(ConnectionType.DynamicHc, plan.Model.Connection.Type);
        Assert.Equal("olmo-1b-dhc-x4", plan.Name);
        Assert.Null(plan.TrainData);                     // the shipped corpus
    }

    [Theory]
    [InlineData("\"2M\"", 2_000_000)]
    [InlineData("\"500B\"", 500_000_000_000)]
    [InlineData("\"10k\"", 10_000)]
    [InlineData("\"1.5T\"", 1_500_000_000_000)]
    [InlineData("123456", 123_456)]
    [InlineData("\"1_000_000\"", 1_000_000)]
    public void TokenBudgetsAcceptIntegersAndSuffixes(string json, long expected)
    {
        var spec = JobSpec.Parse(Shortest.Replace("\"50B\"", json));
        Assert.Equal(expected, spec.Training!.TokenBudget!.Value.Value);
    }

    [Fact]
    public void UnknownFieldsAreRejectedWithTheirPath()
    {
        var ex = Assert.Throws<ConfigException>(() => JobSpec.Parse(Shortest.Replace("\"rate\": 4", "\"rate\": 4, \"rat\": 2")));
        Assert.Equal("connection.rat", ex.Errors[0].Field);
        ex = Assert.Throws<ConfigException>(() => JobSpec.Parse(Shortest.Replace("\"50B\"", "\"fifty\"")));
        Assert.Equal("training.tokenBudget", ex.Errors[0].Field);
        Assert.Equal("training.tokenBudget = 'fifty': must be " + TokenCount.Accepted, ex.Message);
    }

    [Theory]
    [InlineData("\"200Q\"", "'200Q'")]
    [InlineData("-5", "-5")]
    [InlineData("1.5", "1.5")]
    [InlineData("true", "'(true)'")]
    [InlineData("{}", "'(an object)'")]
    public void ATokenCountThatIsNoneSaysWhichFormsAreAccepted(string json, string shown)
    {
        var ex = Assert.Throws<ConfigException>(() => JobSpec.Parse(Shortest.Replace("\"50B\"", json)));
        Assert.Equal($"training.tokenBudget = {shown}: must be a token count: a non-negative integer such as 200000, or a string like \"200K\", \"1.5M\" or \"2B\" "
            + "(digits, an optional decimal fraction, an optional suffix K = 1e3, M = 1e6, B = 1e9 or T = 1e12; a whole number of tokens)", ex.Message);
    }

    [Fact]
    public void MalformedJsonAndValuesOfTheWrongTypeAreNamedByLineAndColumn()
    {
        // A spec file cut off inside "connection": the error names the field, the line and the column (1-based, in
        // characters: the "é" on that line is two bytes), and says what is wrong in words.
        var truncated = "{\n  \"name\": \"x\", \"model\": { \"preset\": \"tiny\" },\n  \"connection\": { \"type\": \"résidual\"";
        var ex = Assert.Throws<ConfigException>(() => JobSpec.Parse(truncated));
        Assert.Equal("connection = '(invalid JSON at line 3, column 37)': must be well-formed JSON: the text ends before every object and array in it is closed (a truncated file?)", ex.Message);

        ex = Assert.Throws<ConfigException>(() => JobSpec.Parse("{ \"model\": { \"preset\": \"tiny\" },\n \"connection\": { \"rate\": \"four\" } }"));
        Assert.Equal("connection.rate = '(a value of another type at line 2, column 32)': must be an integer", ex.Message);
        ex = Assert.Throws<ConfigException>(() => JobSpec.Parse("{ \"tags\": \"a\" }"));
        Assert.Equal("tags = '(a value of another type at line 1, column 14)': must be a list of strings", ex.Message);

        // A group's merged spec is not text the user wrote: no position.
        ex = Assert.Throws<ConfigException>(() => JobSpec.Parse("{ \"connection\": { \"tanh\": 1 } }", positions: false));
        Assert.Equal("connection.tanh = '(a value of another type)': must be true or false", ex.Message);
    }

    [Fact]
    public void EveryInvalidFieldIsNamedWithItsValueAndWhatIsAllowed()
    {
        var spec = JobSpec.Parse("""
            { "model": { "preset": "tiny", "overrides": { "maxSeqLen": 4096 } }, "architecture": "moe",
              "connection": { "type": "dynamic-hc", "rate": 0 }, "moe": { "experts": 2, "topK": 4 },
              "training": { "tokenBudget": 100, "precision": "bf16", "schedule": "step", "lr": 5 } }
            """);
        var ex = Assert.Throws<ConfigException>(() => JobPlan.Resolve(spec, DeviceKind.Cpu));
        var fields = ex.Errors.Select(e => e.Field).ToList();
        Assert.Contains("model.overrides.maxSeqLen", fields);
        Assert.Contains("connection.rate", fields);
        Assert.Contains("moe.topK", fields);
        Assert.Contains("training.tokenBudget", fields);     // below one step
        Assert.Contains("training.precision", fields);       // bf16 on a CPU worker
        Assert.Contains("training.schedule", fields);
        Assert.Contains("training.lr", fields);
        Assert.Contains("training.tokenBudget = 100: must be >= one step of batchTokens = ", ex.Message);
        Assert.Contains("model.overrides.maxSeqLen = 4096: must be <= the preset's maximum 128", ex.Message);
    }

    [Theory]
    [InlineData("dense", null, "cpu", "none", null)]
    [InlineData("dense", "hc", "cpu", "hc", null)]
    [InlineData("moe", "hc", "cpu", "hc", null)]
    [InlineData("dense", "block", "cpu", "block", null)]
    [InlineData("dense", "checkpoint", "cpu", null, "training.recompute = 'checkpoint': must be none, hc or block")]
    [InlineData("moe", "block", "cpu", null, "training.recompute = 'block': must be none or hc with moe")]
    [InlineData("dense", "block", "cuda", null, "training.recompute = 'block': must be none or hc with dropout on cuda")]
    public void RecomputeIsAModeThatFitsTheModelAndDevice(string architecture, string? recompute, string device, string? mode, string? error)
    {
        var field = recompute is null ? "" : ", \"recompute\": \"" + recompute + "\"";
        var spec = JobSpec.Parse($$"""
            { "model": { "preset": "tiny", "overrides": { "dropout": 0.1 } }, "architecture": "{{architecture}}", "connection": { "type": "dynamic-hc" },
              "training": { "tokenBudget": "1M"{{field}} } }
            """);
        var kind = device == "cuda" ? DeviceKind.Cuda : DeviceKind.Cpu;
        if (error is null)
        {
            var plan = JobPlan.Resolve(spec, kind);
            Assert.Equal(mode, plan.Training.Recompute.ToString().ToLowerInvariant());
            Assert.Equal(plan.Training.Recompute, JobPlan.FromJson(plan.ToJson()).Training.Recompute);
        }
        else Assert.Contains(error, Assert.Throws<ConfigException>(() => JobPlan.Resolve(spec, kind)).Message);
    }

    [Fact]
    public void MissingRequiredFieldsAreAllReported()
    {
        var ex = Assert.Throws<ConfigException>(() => JobPlan.Resolve(JobSpec.Parse("{}")));
        Assert.Equal(["model.preset", "architecture", "connection.type", "training.tokenBudget"], ex.Errors.Select(e => e.Field));
    }

    [Fact]
    public void BatchTokensMustBeAMultipleOfAMicroBatch()
    {
        var spec = JobSpec.Parse(Shortest.Replace("olmo-1b", "tiny").Replace("\"50B\"", "\"1M\", \"batchTokens\": 1000"));
        var ex = Assert.Throws<ConfigException>(() => JobPlan.Resolve(spec));
        Assert.Contains("training.batchTokens = 1000: must be a positive multiple of microBatch x sequence length = 8 x 128 = 1024", ex.Message);
    }
}

/// <summary>The stored form of a resolved plan (runs.Plan): what the training and evaluation processes run.</summary>
public class JobPlanStorageTests
{
    [Theory]
    [InlineData("""{ "model": { "preset": "tiny", "overrides": { "dropout": 0.1 } }, "architecture": "dense", "connection": { "type": "dynamic-hc", "rate": 2, "tanh": false }, "training": { "tokenBudget": "40K", "schedule": "linear", "seed": 7 }, "tags": ["a", "b"] }""")]
    [InlineData("""{ "model": { "preset": "small" }, "architecture": "moe", "moe": { "experts": 4, "topK": 1 }, "connection": { "type": "static-hc" }, "training": { "tokenBudget": 1000000 }, "data": { "train": "corpus-bytes", "validation": ["valid-austen-bytes"] }, "evaluation": { "tasks": ["arc_easy", { "name": "mine", "file": "eval/x.jsonl", "limit": 5 }], "limit": 20 } }""")]
    [InlineData("""{ "name": "p", "model": { "preset": "olmo-1b" }, "architecture": "dense", "connection": { "type": "post-norm" }, "training": { "tokenBudget": "1B", "precision": "bf16" } }""")]
    public void APlanComesBackFromItsStoredFormEqual(string json)
    {
        var spec = JobSpec.Parse(json);
        var plan = JobPlan.Resolve(spec, spec.Training?.Precision == "bf16" ? DeviceKind.Cuda : DeviceKind.Cpu);
        var stored = plan.ToJson();
        var back = JobPlan.FromJson(stored);
        Assert.Equal(plan.Model, back.Model);             // records: every field of the model and its connection and MoE
        Assert.Equal(plan.Training, back.Training);
        Assert.Equal(plan.Name, back.Name);
        Assert.Equal(plan.Tags, back.Tags);
        Assert.Equal(plan.TrainSet, back.TrainSet);
        Assert.Equal(plan.ValidationSets, back.ValidationSets);
        Assert.Equal(plan.Evaluation?.Tasks, back.Evaluation?.Tasks);
        Assert.Equal(plan.Evaluation?.EverySteps, back.Evaluation?.EverySteps);
        Assert.Equal(stored, back.ToJson());
        Assert.DoesNotContain("\"isHyper\"", stored);     // derived values are not stored
    }

    [Fact]
    public void ARunWithoutAStoredPlanResolvesItsSpec()
    {
        var spec = JobSpec.Parse("""{ "model": { "preset": "tiny" }, "architecture": "dense", "connection": { "type": "residual" }, "training": { "tokenBudget": 4096 } }""");
        var plan = JobPlan.Stored(null, spec, DeviceKind.Cpu);
        Assert.Equal(4, plan.Training.Steps);
        Assert.Equal(plan.ToJson(), JobPlan.Stored(plan.ToJson(), spec, DeviceKind.Cpu).ToJson());
    }
}
