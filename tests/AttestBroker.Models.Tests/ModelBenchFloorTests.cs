using AttestBroker.Models.Benchmarking;
using NUnit.Framework;

namespace AttestBroker.Models.Tests;

[TestFixture]
public sealed class The_model_bench_floor_is_start_up_plus_every_cost_spread_over_every_core
{
    private const long TwoGiB = 2L << 30;
    private const double GiB = 1 << 30;

    [Test]
    public void Start_up_plus_hash_decrypt_and_cat_cpu_over_the_processors_gives_the_floor()
    {
        // H = 2 GiB / 1 GiB/s = 2 s, D = 2 GiB / 4 GiB/s = 0.5 s, C = 1.5 s: 0.25 + (2 + 0.5 + 1.5) / 2 = 2.25 s.
        var floor = ModelBench.Floor(TwoGiB, 1 * GiB, 4 * GiB, TimeSpan.FromSeconds(1.5), TimeSpan.FromSeconds(0.25), 2);

        Assert.That(floor, Is.EqualTo(TimeSpan.FromSeconds(2.25)));
    }

    [Test]
    public void On_one_core_nothing_is_divided_and_start_up_is_never_divided()
    {
        var oneCore = ModelBench.Floor(TwoGiB, 1 * GiB, 4 * GiB, TimeSpan.FromSeconds(1.5), TimeSpan.FromSeconds(0.25), 1);
        var fourCores = ModelBench.Floor(TwoGiB, 1 * GiB, 4 * GiB, TimeSpan.FromSeconds(1.5), TimeSpan.FromSeconds(0.25), 4);

        Assert.Multiple(() =>
        {
            Assert.That(oneCore, Is.EqualTo(TimeSpan.FromSeconds(4.25)));
            Assert.That(fourCores, Is.EqualTo(TimeSpan.FromSeconds(1.25)), "0.25 + (2 + 0.5 + 1.5) / 4");
        });
    }

    [Test]
    public void Dear_copies_spread_like_the_rest_and_are_not_a_lower_bound_on_their_own()
    {
        // Dear tmpfs pages: cat needs 4 s of CPU. Its reads spread over the cores with the hashing and decryption, so
        // the copies set no bound of their own: 0.25 + (2 + 0.5 + 4) / 2 = 3.5 s, less than start-up + cat's CPU.
        var floor = ModelBench.Floor(TwoGiB, 1 * GiB, 4 * GiB, TimeSpan.FromSeconds(4), TimeSpan.FromSeconds(0.25), 2);

        Assert.That(floor, Is.EqualTo(TimeSpan.FromSeconds(3.5)));
    }

    [Test]
    public void The_cat_target_is_within_reach_only_when_the_floor_is_at_most_1_15_cat()
    {
        var floor = TimeSpan.FromSeconds(2.25);

        Assert.Multiple(() =>
        {
            Assert.That(ModelBench.CatTargetWithinReach(floor, TimeSpan.FromSeconds(2.0)), Is.True, "2.25 / 2.0 = 1.125 <= 1.15");
            Assert.That(ModelBench.CatTargetWithinReach(floor, TimeSpan.FromSeconds(1.5)), Is.False, "2.25 / 1.5 = 1.5 > 1.15");
            Assert.That(ModelBench.Ratio(floor, TimeSpan.FromSeconds(1.5)), Is.EqualTo(1.5));
        });
    }

    [Test]
    public void The_age_target_is_within_reach_only_when_age_takes_at_least_two_floors()
    {
        var floor = TimeSpan.FromSeconds(2.25);

        Assert.Multiple(() =>
        {
            Assert.That(ModelBench.AgeTargetWithinReach(floor, TimeSpan.FromSeconds(4.5)), Is.True, "4.5 / 2.25 = 2, the target's boundary");
            Assert.That(ModelBench.AgeTargetWithinReach(floor, TimeSpan.FromSeconds(4.0)), Is.False, "4.0 / 2.25 = 1.78 < 2");
        });
    }

    [Test]
    public void The_report_derives_the_best_ratios_from_its_floor()
    {
        var report = new ModelBenchReport(false, TwoGiB, TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(1.5), TimeSpan.FromSeconds(4.5), 4 * GiB, 1 * GiB, 50L << 20)
        {
            FloorWall = TimeSpan.FromSeconds(2.25),
        };
        var withoutAge = report with { Age = null };

        Assert.Multiple(() =>
        {
            Assert.That(report.BestOursOverCat, Is.EqualTo(1.5));
            Assert.That(report.BestAgeOverOurs, Is.EqualTo(2.0));
            Assert.That(withoutAge.BestAgeOverOurs, Is.Null, "no age, no age ratio");
        });
    }

    [TestCase(0.0, 1.0, 1, "hashBytesPerSecond")]
    [TestCase(1.0, double.NaN, 1, "aesGcmBytesPerSecond")]
    [TestCase(1.0, double.PositiveInfinity, 1, "aesGcmBytesPerSecond")]
    [TestCase(1.0, 1.0, 0, "processors")]
    public void Impossible_inputs_are_refused_naming_the_argument(double hash, double aes, int processors, string argument)
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => ModelBench.Floor(TwoGiB, hash, aes, TimeSpan.Zero, TimeSpan.Zero, processors));

        Assert.That(ex!.ParamName, Is.EqualTo(argument));
    }
}

[TestFixture]
public sealed class The_model_bench_reports_the_cpu_time_the_host_took
{
    [Test]
    public void Steal_is_its_share_of_the_eight_counters_between_two_readings()
    {
        // Between the readings: user 60, system 20, idle 10, steal 10 jiffies of 100.
        var share = ModelBench.StealShare("cpu  100 0 50 1000 0 0 0 5 0 0", "cpu  160 0 70 1010 0 0 0 15 0 0");

        Assert.That(share, Is.EqualTo(0.10).Within(1e-12));
    }

    [TestCase(null, "cpu  1 1 1 1 1 1 1 1 0 0")]
    [TestCase("cpu  1 1 1 1 1 1 1 1 0 0", "cpu0 1 1 1 1 1 1 1 1 0 0")]
    [TestCase("cpu  1 1 1", "cpu  2 2 2")]
    [TestCase("cpu  1 1 1 1 1 1 1 x 0 0", "cpu  2 2 2 2 2 2 2 2 0 0")]
    [TestCase("cpu  1 1 1 1 1 1 1 1 0 0", "cpu  1 1 1 1 1 1 1 1 0 0")]
    public void Unreadable_lines_or_no_time_passing_give_no_share(string? before, string? after)
    {
        Assert.That(ModelBench.StealShare(before, after), Is.Null);
    }
}

[TestFixture]
public sealed class The_model_bench_prices_ages_writes_like_cats_for_its_age_ceiling
{
    [Test]
    public void The_ceiling_is_age_into_dev_null_plus_cat_cpu_over_the_floor()
    {
        // age decrypts into /dev/null in 2.0 s; cat writes in 1.5 s of CPU; the floor is 2.25 s: (2.0 + 1.5) / 2.25.
        var ceiling = ModelBench.AgeRatioCeiling(TimeSpan.FromSeconds(2.0), TimeSpan.FromSeconds(1.5), TimeSpan.FromSeconds(2.25));

        Assert.That(ceiling, Is.EqualTo(3.5 / 2.25).Within(1e-12));
    }

    [Test]
    public void The_report_gives_no_ceiling_when_age_did_not_run()
    {
        var report = new ModelBenchReport(false, 2L << 30, TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(1.5), null, 1 << 30, 1 << 30, 50L << 20)
        {
            CatCpu = TimeSpan.FromSeconds(1.5),
            FloorWall = TimeSpan.FromSeconds(2.25),
        };

        Assert.Multiple(() =>
        {
            Assert.That(report.AgeOverOursCeiling, Is.Null);
            Assert.That((report with { AgeToNull = TimeSpan.FromSeconds(2.0) }).AgeOverOursCeiling, Is.EqualTo(3.5 / 2.25).Within(1e-12));
        });
    }
}
