using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;

namespace AttestBroker.Kubernetes.Tests;

/// <summary>
/// Contract tests of the KeyReleasePolicy watcher against <see cref="FakeKubernetesApi"/> (no API server here: a
/// local server speaking the list/watch/status shapes).
/// </summary>
[TestFixture]
[CancelAfter(60_000)]
public sealed class KeyReleasePolicyWatcherTests
{
    private FakeKubernetesApi _api = null!;
    private RecordingSink _sink = null!;
    private CancellationTokenSource _stop = null!;
    private Task? _run;

    [SetUp]
    public async Task StartAsync()
    {
        _api = await FakeKubernetesApi.StartAsync();
        _sink = new RecordingSink();
        _stop = new CancellationTokenSource();
    }

    [TearDown]
    public async Task StopAsync()
    {
        await _stop.CancelAsync();
        if (_run is not null)
        {
            try
            {
                await _run;
            }
            catch (OperationCanceledException)
            {
                // expected
            }
        }

        _stop.Dispose();
        await _api.DisposeAsync();
    }

    private static JsonObject Spec(string keyId, JsonObject? requester = null)
    {
        var spec = new JsonObject
        {
            ["keyId"] = keyId,
            ["tee"] = new JsonArray("tdx"),
            ["tdx"] = new JsonObject { ["mrTd"] = new JsonArray(new string('a', 96)) },
        };
        if (requester is not null)
        {
            spec["requester"] = requester;
        }

        return spec;
    }

    private KeyReleasePolicyWatcher Start(TimeProvider? time = null, Func<double>? jitter = null)
    {
        var watcher = new KeyReleasePolicyWatcher(_api.Client(), _sink, new KeyReleasePolicyWatcherOptions { Jitter = jitter ?? (() => 0.0) }, time);
        _run = watcher.RunAsync(_stop.Token);
        return watcher;
    }

    private static JsonObject Condition(JsonObject patch) => patch["status"]!["conditions"]![0]!.AsObject();

    [Test]
    public async Task A_policy_naming_a_key_of_another_namespace_is_rejected_in_its_status_and_never_reaches_the_broker()
    {
        _api.ListAnswers.Enqueue(FakeKubernetesApi.List("100", FakeKubernetesApi.Policy("team-a", "steal", 2, Spec("team-b:model"))));
        Start();

        await Eventually.TrueAsync(() => !_api.StatusPatches.IsEmpty, "a status patch");
        var (ns, name, contentType, body) = _api.StatusPatches.First();
        Assert.Multiple(() =>
        {
            Assert.That((ns, name), Is.EqualTo(("team-a", "steal")));
            Assert.That(contentType, Does.StartWith("application/merge-patch+json"));
            Assert.That((string?)Condition(body)["type"], Is.EqualTo("Accepted"));
            Assert.That((string?)Condition(body)["status"], Is.EqualTo("False"));
            Assert.That((string?)Condition(body)["reason"], Is.EqualTo("Invalid"));
            Assert.That((string?)Condition(body)["message"], Does.StartWith("spec.keyId:").And.Contains("\"team-a:\""));
            Assert.That((long?)body["status"]!["observedGeneration"], Is.EqualTo(2));
            Assert.That(body["status"]!["activeVersion"], Is.Null);
            Assert.That(_sink.Applied, Is.Empty);
        });
    }

    [Test]
    public async Task A_policy_that_lets_another_namespace_request_its_key_is_rejected_naming_requester_namespaces()
    {
        var requester = new JsonObject { ["namespaces"] = new JsonArray("ml-prod", "ml-dev") };
        _api.ListAnswers.Enqueue(FakeKubernetesApi.List("100", FakeKubernetesApi.Policy("ml-prod", "wide", 1, Spec("ml-prod:model", requester))));
        Start();

        await Eventually.TrueAsync(() => !_api.StatusPatches.IsEmpty, "a status patch");
        var condition = Condition(_api.StatusPatches.First().Body);
        Assert.That((string?)condition["status"], Is.EqualTo("False"));
        Assert.That((string?)condition["message"], Does.StartWith("spec.requester.namespaces:"));
        Assert.That(_sink.Applied, Is.Empty);
    }

    [Test]
    public async Task A_valid_policy_reaches_the_sink_scoped_to_its_namespace_and_its_status_shows_the_active_version()
    {
        _sink.NextVersion = 7;
        _api.ListAnswers.Enqueue(FakeKubernetesApi.List("100", FakeKubernetesApi.Policy("ml-prod", "llama", 3, Spec("ml-prod:llama-70b", new JsonObject { ["serviceAccounts"] = new JsonArray("runner") }))));
        Start();

        await Eventually.TrueAsync(() => !_api.StatusPatches.IsEmpty, "a status patch");
        var (keyId, document, author) = _sink.Applied.Single();
        var doc = JsonNode.Parse(document)!.AsObject();
        var status = _api.StatusPatches.First().Body["status"]!;
        Assert.Multiple(() =>
        {
            Assert.That(keyId, Is.EqualTo("ml-prod:llama-70b"));
            Assert.That(author, Is.EqualTo("k8s:ml-prod/llama"));
            Assert.That(doc.ContainsKey("keyId"), Is.False);
            Assert.That((string?)doc["name"], Is.EqualTo("llama"));
            Assert.That((long?)doc["version"], Is.EqualTo(3));
            Assert.That(doc["requester"]!["namespaces"]!.ToJsonString(), Is.EqualTo("[\"ml-prod\"]"));
            Assert.That(doc["requester"]!["serviceAccounts"]!.ToJsonString(), Is.EqualTo("[\"runner\"]"));
            Assert.That((string?)status["conditions"]![0]!["status"], Is.EqualTo("True"));
            Assert.That((string?)status["conditions"]![0]!["reason"], Is.EqualTo("Applied"));
            Assert.That((long?)status["activeVersion"], Is.EqualTo(7));
            Assert.That((string?)status["activeSha256"], Is.EqualTo(RecordingSink.Sha(7)));
            Assert.That((long?)status["observedGeneration"], Is.EqualTo(3));
        });
    }

    [Test]
    public async Task A_document_the_broker_refuses_gets_Accepted_False_naming_the_spec_field()
    {
        _sink.Reject = ("tdx.mrTd[0]", "must be 48 bytes of hex");
        _api.ListAnswers.Enqueue(FakeKubernetesApi.List("100", FakeKubernetesApi.Policy("ml-prod", "p", 1, Spec("ml-prod:m"))));
        Start();

        await Eventually.TrueAsync(() => !_api.StatusPatches.IsEmpty, "a status patch");
        var condition = Condition(_api.StatusPatches.First().Body);
        Assert.That((string?)condition["status"], Is.EqualTo("False"));
        Assert.That((string?)condition["message"], Does.StartWith("spec.tdx.mrTd[0]: must be 48 bytes of hex"));
    }

    [Test]
    public async Task Watch_events_apply_new_generations_only_and_a_deleted_policy_is_removed_from_the_broker()
    {
        _api.ListAnswers.Enqueue(FakeKubernetesApi.List("100"));
        var p1 = FakeKubernetesApi.Policy("ml-prod", "p", 1, Spec("ml-prod:m"), "101");
        var p1Status = FakeKubernetesApi.Policy("ml-prod", "p", 1, Spec("ml-prod:m"), "102");
        var p2 = FakeKubernetesApi.Policy("ml-prod", "p", 2, Spec("ml-prod:m"), "103");
        var gone = FakeKubernetesApi.Policy("ml-prod", "p", 2, Spec("ml-prod:m"), "104");
        await _api.WatchScripts.Writer.WriteAsync(
        [
            FakeKubernetesApi.Event("ADDED", p1),
            FakeKubernetesApi.Event("MODIFIED", p1Status),
            FakeKubernetesApi.Event("MODIFIED", p2),
            FakeKubernetesApi.Event("DELETED", gone),
        ]);
        var watcher = Start();

        await Eventually.TrueAsync(() => _sink.Removed.Count == 1, "the key removed");
        Assert.Multiple(() =>
        {
            Assert.That(_sink.Applied.Select(a => (long?)JsonNode.Parse(a.Document)!["version"]), Is.EqualTo(new long?[] { 1, 2 }), "generation 1 and 2, not the status-only event");
            Assert.That(_sink.Removed.Single(), Is.EqualTo(("ml-prod:m", "k8s:ml-prod/p")));
            Assert.That(watcher.ListCount, Is.EqualTo(1));
        });
        await Eventually.TrueAsync(() => watcher.ResourceVersion == "104", "resourceVersion of the last event");
    }

    [Test]
    public async Task Two_policies_for_one_key_the_second_is_refused_until_the_first_is_deleted()
    {
        var first = FakeKubernetesApi.Policy("ml-prod", "a", 1, Spec("ml-prod:m"));
        var second = FakeKubernetesApi.Policy("ml-prod", "b", 1, Spec("ml-prod:m"));
        _api.ListAnswers.Enqueue(FakeKubernetesApi.List("100", first, second));
        await _api.WatchScripts.Writer.WriteAsync(null); // hold the first watch
        Start();

        await Eventually.TrueAsync(() => _api.StatusPatches.Count == 2, "two status patches");
        var refused = _api.StatusPatches.Single(p => p.Name == "b");
        Assert.That((string?)Condition(refused.Body)["reason"], Is.EqualTo("KeyIdConflict"));
        Assert.That(_sink.Applied.Select(a => a.Author), Is.EqualTo(new[] { "k8s:ml-prod/a" }));
    }

    [Test]
    public async Task Deleting_the_policy_that_holds_a_key_lets_the_refused_one_take_it()
    {
        var first = FakeKubernetesApi.Policy("ml-prod", "a", 1, Spec("ml-prod:m"));
        var second = FakeKubernetesApi.Policy("ml-prod", "b", 1, Spec("ml-prod:m"));
        _api.ListAnswers.Enqueue(FakeKubernetesApi.List("100", first, second));
        await _api.WatchScripts.Writer.WriteAsync([FakeKubernetesApi.Event("DELETED", first)]);
        Start();

        await Eventually.TrueAsync(() => _sink.Applied.Count == 2, "the second policy applied");
        Assert.Multiple(() =>
        {
            Assert.That(_sink.Applied.Select(a => a.Author), Is.EqualTo(new[] { "k8s:ml-prod/a", "k8s:ml-prod/b" }));
            Assert.That(_sink.Removed.Select(r => r.KeyId), Is.EqualTo(new[] { "ml-prod:m" }));
            Assert.That((string?)Condition(_api.StatusPatches.Last(p => p.Name == "b").Body)["status"], Is.EqualTo("True"));
        });
    }

    [Test]
    public async Task Changing_a_policys_keyId_removes_the_policy_of_the_old_key()
    {
        _api.ListAnswers.Enqueue(FakeKubernetesApi.List("100", FakeKubernetesApi.Policy("ml-prod", "p", 1, Spec("ml-prod:old"))));
        await _api.WatchScripts.Writer.WriteAsync([FakeKubernetesApi.Event("MODIFIED", FakeKubernetesApi.Policy("ml-prod", "p", 2, Spec("ml-prod:new"), "101"))]);
        Start();

        await Eventually.TrueAsync(() => _sink.Removed.Count == 1, "the old key removed");
        Assert.That(_sink.Applied.Select(a => a.KeyId), Is.EqualTo(new[] { "ml-prod:old", "ml-prod:new" }));
        Assert.That(_sink.Removed.Single().KeyId, Is.EqualTo("ml-prod:old"));
    }

    [Test]
    public async Task After_a_bookmark_the_next_watch_resumes_from_the_bookmarks_resourceVersion_without_listing_again()
    {
        _api.ListAnswers.Enqueue(FakeKubernetesApi.List("100"));
        await _api.WatchScripts.Writer.WriteAsync([FakeKubernetesApi.Bookmark("150")]); // then the server ends the watch
        var watcher = Start();

        await Eventually.TrueAsync(() => _api.WatchRequests.Count == 2, "a second watch");
        var watches = _api.WatchRequests.ToArray();
        Assert.Multiple(() =>
        {
            Assert.That((string?)watches[0]["resourceVersion"], Is.EqualTo("100"));
            Assert.That((string?)watches[0]["allowWatchBookmarks"], Is.EqualTo("true"));
            Assert.That((string?)watches[1]["resourceVersion"], Is.EqualTo("150"));
            Assert.That((string?)watches[1]["allowWatchBookmarks"], Is.EqualTo("true"));
            Assert.That(_api.ListRequests, Has.Count.EqualTo(1));
            Assert.That(watcher.ListCount, Is.EqualTo(1));
        });
    }

    [Test]
    public async Task A_410_Gone_error_event_makes_the_watcher_list_again_and_watch_from_the_new_list()
    {
        _api.ListAnswers.Enqueue(FakeKubernetesApi.List("100", FakeKubernetesApi.Policy("ml-prod", "old", 1, Spec("ml-prod:old"))));
        _api.ListAnswers.Enqueue(FakeKubernetesApi.List("200", FakeKubernetesApi.Policy("ml-prod", "new", 1, Spec("ml-prod:new"))));
        await _api.WatchScripts.Writer.WriteAsync([FakeKubernetesApi.Gone()]);
        var watcher = Start();

        await Eventually.TrueAsync(() => _api.WatchRequests.Count == 2, "a watch after the relist");
        var watches = _api.WatchRequests.ToArray();
        Assert.Multiple(() =>
        {
            Assert.That(watcher.ListCount, Is.EqualTo(2));
            Assert.That((string?)watches[0]["resourceVersion"], Is.EqualTo("100"));
            Assert.That((string?)watches[1]["resourceVersion"], Is.EqualTo("200"));
            Assert.That(_sink.Applied.Select(a => a.KeyId), Is.EqualTo(new[] { "ml-prod:old", "ml-prod:new" }));
            Assert.That(_sink.Removed.Select(r => r.KeyId), Is.EqualTo(new[] { "ml-prod:old" }), "a policy missing from the relist was deleted meanwhile");
            Assert.That(watcher.ConsecutiveFailures, Is.Zero, "410 is not an error to back off from");
        });
    }

    [Test]
    public async Task List_errors_back_off_exponentially_on_the_time_provider_and_then_recover()
    {
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-01-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        _api.ListAnswers.Enqueue(500);
        _api.ListAnswers.Enqueue(503);
        _api.ListAnswers.Enqueue(FakeKubernetesApi.List("100"));
        var delays = new ConcurrentQueue<TimeSpan>();
        var watcher = new KeyReleasePolicyWatcher(_api.Client(), _sink, new KeyReleasePolicyWatcherOptions { Jitter = () => 0.0, InitialBackoff = TimeSpan.FromSeconds(2) }, time);
        watcher.BackingOff += (_, d) => delays.Enqueue(d);
        _run = watcher.RunAsync(_stop.Token);

        await Eventually.TrueAsync(() => delays.Count == 1, "the first back-off");
        Assert.That(_api.ListRequests, Has.Count.EqualTo(1), "no retry before the back-off time has passed");
        time.Advance(delays.First());
        await Eventually.TrueAsync(() => delays.Count == 2, "the second back-off");
        Assert.That(_api.ListRequests, Has.Count.EqualTo(2));
        time.Advance(delays.Last());
        await Eventually.TrueAsync(() => _api.WatchRequests.Count == 1, "a watch after the successful list");
        Assert.Multiple(() =>
        {
            Assert.That(delays, Is.EqualTo(new[] { TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2) }), "2 s then 4 s, halved by zero jitter");
            Assert.That(watcher.ConsecutiveFailures, Is.Zero);
        });
    }

    [Test]
    public void Backoff_doubles_up_to_the_maximum_and_jitter_keeps_it_between_half_and_all()
    {
        var initial = TimeSpan.FromSeconds(1);
        var max = TimeSpan.FromSeconds(60);
        Assert.Multiple(() =>
        {
            Assert.That(KeyReleasePolicyWatcher.Backoff(1, initial, max, 1.0), Is.EqualTo(TimeSpan.FromSeconds(1)));
            Assert.That(KeyReleasePolicyWatcher.Backoff(4, initial, max, 1.0), Is.EqualTo(TimeSpan.FromSeconds(8)));
            Assert.That(KeyReleasePolicyWatcher.Backoff(4, initial, max, 0.0), Is.EqualTo(TimeSpan.FromSeconds(4)));
            Assert.That(KeyReleasePolicyWatcher.Backoff(50, initial, max, 1.0), Is.EqualTo(max));
            Assert.That(KeyReleasePolicyWatcher.Backoff(50, initial, max, 0.0), Is.EqualTo(max / 2));
        });
    }

    /// <summary>Records what the watcher hands the broker; versions and digests are made up per call.</summary>
    private sealed class RecordingSink : IPolicySink
    {
        public ConcurrentQueue<(string KeyId, string Document, string Author)> Applied { get; } = new();

        public ConcurrentQueue<(string KeyId, string Author)> Removed { get; } = new();

        public long NextVersion { get; set; } = 1;

        public (string Path, string Problem)? Reject { get; set; }

        public static string Sha(long version) => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(BitConverter.GetBytes(version)));

        public Task<AppliedPolicy> ApplyAsync(string keyId, string documentJson, string author, CancellationToken cancellationToken)
        {
            if (Reject is { } r)
            {
                throw new PolicyRejectedException(r.Path, r.Problem);
            }

            Applied.Enqueue((keyId, documentJson, author));
            var v = NextVersion++;
            return Task.FromResult(new AppliedPolicy(v, Sha(v)));
        }

        public Task RemoveAsync(string keyId, string author, CancellationToken cancellationToken)
        {
            Removed.Enqueue((keyId, author));
            return Task.CompletedTask;
        }
    }
}
