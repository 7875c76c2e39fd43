using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;

namespace AttestBroker.Kubernetes.Tests;

/// <summary>
/// Contract tests of the quarantine response against <see cref="FakeKubernetesApi"/> (no API server here: a local
/// server answering pod merge patches — refusing a changed UID as the API server does — and Event creation).
/// </summary>
[TestFixture]
[CancelAfter(60_000)]
public sealed class QuarantineMonitorTests
{
    private static readonly DateTimeOffset Start = DateTimeOffset.Parse("2026-03-01T12:00:00Z", System.Globalization.CultureInfo.InvariantCulture);
    private static readonly RequesterIdentity Pod = new("ml-prod", "runner", "llm-0", "uid-1", "system:serviceaccount:ml-prod:runner");
    private FakeKubernetesApi _api = null!;
    private FakeTimeProvider _time = null!;

    [SetUp]
    public async Task StartAsync()
    {
        _api = await FakeKubernetesApi.StartAsync();
        _api.Pods["ml-prod/llm-0"] = "uid-1";
        _time = new FakeTimeProvider(Start);
    }

    [TearDown]
    public async Task StopAsync() => await _api.DisposeAsync();

    private QuarantineMonitor Monitor(bool dryRun = false, int threshold = 3, int capacity = 100) =>
        new(_api.Client(), new QuarantineOptions { Enabled = true, DryRun = dryRun, FailureThreshold = threshold, Window = TimeSpan.FromMinutes(10), MaximumTrackedPods = capacity, ReportingInstance = "attestbroker-0" }, _time);

    private static async Task<List<QuarantineDecision?>> FailAsync(QuarantineMonitor monitor, RequesterIdentity who, int times)
    {
        var decisions = new List<QuarantineDecision?>();
        for (var i = 0; i < times; i++)
        {
            decisions.Add(await monitor.RecordFailureAsync(who, CancellationToken.None));
        }

        return decisions;
    }

    [Test]
    public async Task A_pod_is_quarantined_at_the_threshold_not_before_and_only_once()
    {
        var monitor = Monitor(threshold: 3);

        var before = await FailAsync(monitor, Pod, 2);
        Assert.That(before, Is.All.Null);
        Assert.That(_api.PodPatches, Is.Empty, "no label before the threshold");

        var decision = await monitor.RecordFailureAsync(Pod, CancellationToken.None);
        var after = await FailAsync(monitor, Pod, 3);

        Assert.That(decision, Is.Not.Null);
        Assert.That(decision!.Action, Is.EqualTo(QuarantineAction.Quarantined), decision.Message);
        var (ns, name, contentType, body) = _api.PodPatches.Single();
        var ev = _api.Events.Single().Body;
        Assert.Multiple(() =>
        {
            Assert.That(decision.Failures, Is.EqualTo(3));
            Assert.That((ns, name), Is.EqualTo(("ml-prod", "llm-0")));
            Assert.That(contentType, Does.StartWith("application/merge-patch+json"));
            Assert.That((string?)body["metadata"]!["labels"]!["attestbroker.io/quarantine"], Is.EqualTo("true"));
            Assert.That((string?)body["metadata"]!["uid"], Is.EqualTo("uid-1"), "the UID guards against a replaced pod");
            Assert.That((string?)ev["reason"], Is.EqualTo("Quarantined"));
            Assert.That((string?)ev["type"], Is.EqualTo("Warning"));
            Assert.That((string?)ev["involvedObject"]!["kind"], Is.EqualTo("Pod"));
            Assert.That((string?)ev["involvedObject"]!["name"], Is.EqualTo("llm-0"));
            Assert.That((string?)ev["involvedObject"]!["uid"], Is.EqualTo("uid-1"));
            Assert.That((string?)ev["metadata"]!["namespace"], Is.EqualTo("ml-prod"));
            Assert.That(after, Is.All.Null, "reported once");
        });
    }

    [Test]
    public async Task Dry_run_reports_the_decision_but_neither_patches_nor_creates_an_event()
    {
        var monitor = Monitor(dryRun: true, threshold: 2);

        var decisions = await FailAsync(monitor, Pod, 2);

        Assert.That(decisions[1]!.Action, Is.EqualTo(QuarantineAction.WouldQuarantine));
        Assert.That(_api.PodPatches, Is.Empty);
        Assert.That(_api.Events, Is.Empty);
    }

    [Test]
    public async Task Failures_older_than_the_window_do_not_count()
    {
        var monitor = Monitor(threshold: 3);

        await FailAsync(monitor, Pod, 2);
        _time.Advance(TimeSpan.FromMinutes(11));
        var decisions = await FailAsync(monitor, Pod, 2);
        Assert.That(decisions, Is.All.Null);
        var third = await monitor.RecordFailureAsync(Pod, CancellationToken.None);
        Assert.That(third?.Action, Is.EqualTo(QuarantineAction.Quarantined));
    }

    [Test]
    public async Task A_pod_replaced_under_the_same_name_is_not_labelled()
    {
        _api.Pods["ml-prod/llm-0"] = "uid-2"; // the pod that failed (uid-1) is gone; a new one took its name
        var monitor = Monitor(threshold: 1);

        var decision = await monitor.RecordFailureAsync(Pod, CancellationToken.None);

        Assert.That(decision!.Action, Is.EqualTo(QuarantineAction.PodReplaced));
        Assert.That(_api.Events, Is.Empty);
    }

    [Test]
    public async Task A_deleted_pod_is_reported_as_replaced()
    {
        _api.Pods.Clear();
        var decision = await Monitor(threshold: 1).RecordFailureAsync(Pod, CancellationToken.None);

        Assert.That(decision!.Action, Is.EqualTo(QuarantineAction.PodReplaced));
    }

    [Test]
    public async Task Pods_are_counted_apart_and_an_identity_without_a_pod_is_not_counted()
    {
        var monitor = Monitor(threshold: 2);
        var other = Pod with { PodName = "llm-1", PodUid = "uid-9" };
        var noPod = Pod with { PodName = null, PodUid = null };

        var decisions = new[]
        {
            await monitor.RecordFailureAsync(Pod, CancellationToken.None),
            await monitor.RecordFailureAsync(other, CancellationToken.None),
            await monitor.RecordFailureAsync(noPod, CancellationToken.None),
            await monitor.RecordFailureAsync(noPod, CancellationToken.None),
        };

        Assert.That(decisions, Is.All.Null);
        Assert.That(monitor.TrackedPods, Is.EqualTo(2));
    }

    [Test]
    public async Task When_disabled_nothing_is_counted_or_done()
    {
        var monitor = new QuarantineMonitor(_api.Client(), new QuarantineOptions { Enabled = false, FailureThreshold = 1 });

        Assert.That(await monitor.RecordFailureAsync(Pod, CancellationToken.None), Is.Null);
        Assert.That(monitor.TrackedPods, Is.Zero);
        Assert.That(_api.PodPatches, Is.Empty);
    }

    [Test]
    public async Task Memory_is_bounded_by_the_number_of_tracked_pods()
    {
        var monitor = Monitor(threshold: 5, capacity: 4);
        for (var i = 0; i < 50; i++)
        {
            await monitor.RecordFailureAsync(Pod with { PodName = "p" + i, PodUid = "u" + i }, CancellationToken.None);
        }

        Assert.That(monitor.TrackedPods, Is.EqualTo(4));
    }

    [Test]
    public void Enabling_without_dry_run_needs_a_client() =>
        Assert.That(() => new QuarantineMonitor(null, new QuarantineOptions { Enabled = true }), Throws.ArgumentException.With.Message.Contains("client"));
}
