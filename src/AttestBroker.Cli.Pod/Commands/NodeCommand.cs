using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using AttestBroker.Models;

namespace AttestBroker.Cli.Commands;

/// <summary>
/// <c>attestbroker node fetch-model</c>: the node helper. Gets the model key (attesting through the agent library with
/// --broker, or from --key-file), then streams the encrypted model from a directory or an HTTP(S) URL through the
/// parallel AES-256-GCM pipeline into a memory-backed directory, with a progress bar on a terminal or JSON progress
/// lines otherwise (docs/node-helper.md). Exit 0 done, 1 verification failure or key denied, 2 usage/input/destination,
/// 3 broker unavailable.
/// </summary>
internal static class NodeCommand
{
    public static Command Create()
    {
        var node = new Command("node", "The node helper: fetch and decrypt models into memory-backed volumes (init container or DaemonSet).");
        node.Subcommands.Add(FetchModel());
        return node;
    }

    private static Command FetchModel()
    {
        var model = new Option<string>("--model") { Description = "The encrypted model: a directory, or an http(s):// base URL (streamed, never written to local disk; a cut download resumes with Range from the segment being read).", Required = true };
        var keyId = new Option<string>("--key-id") { Description = "The model's key id: fetched from the broker with --broker; the manifest and every file header must name it.", Required = true };
        var output = new Option<string>("--out") { Description = "Destination directory; must be on tmpfs or ramfs unless --allow-disk.", Required = true };
        var allowDisk = new Option<bool>("--allow-disk") { Description = "Allow a disk-backed destination (the decrypted weights would reach disk: tests only)." };
        var publisherKey = new Option<string?>("--publisher-key") { Description = "Publisher public key (PEM SPKI, as cosign public-key prints); manifest.json.sig must verify under it. Without it the signature is not checked (a warning is printed)." };
        var workers = new Option<int>("--workers") { Description = "Decrypting threads, 1..64 (default: number of processors).", DefaultValueFactory = _ => Environment.ProcessorCount };
        var progress = new Option<string>("--progress") { Description = "auto (default: a bar on a terminal, JSON lines otherwise), bar, json or none. Progress goes to standard error.", DefaultValueFactory = _ => "auto" };
        progress.AcceptOnlyFromAmong("auto", "bar", "json", "none");
        var keys = new ModelKeySource();
        var command = new Command("fetch-model", "Get the model key (attest with --broker, or --key-file) and stream-decrypt the model into a memory-backed directory. Exit 0 done, 1 verification failed or key denied, 2 usage/input/destination, 3 broker unavailable.")
        {
            model, keyId, output, allowDisk, publisherKey, workers, progress,
        };
        keys.AddTo(command);
        command.SetAction(async (parse, ct) =>
        {
            var error = parse.InvocationConfiguration.Error;
            var stdout = parse.InvocationConfiguration.Output;
            var id = parse.GetRequiredValue(keyId);
            try
            {
                // Everything that can be refused locally is refused before the broker releases anything.
                keys.Validate(parse, id);
                ModelFileHeader.ValidateKeyId(id);
                var workerCount = parse.GetValue(workers);
                if (workerCount is < 1 or > 64)
                {
                    throw new CliUsageException("--workers must be 1 .. 64");
                }

                var mode = ProgressDisplay.ResolveMode(parse.GetValue(progress)!, error);
                using var publisher = parse.GetValue(publisherKey) is { } pubPath ? ManifestSigning.LoadPublicKeyPem(ModelDecryptCommand.ReadText(pubPath, "publisher key")) : null;
                using var http = ModelDecryptCommand.OpenSource(parse.GetRequiredValue(model), out var source);
                var destination = parse.GetRequiredValue(output);
                MemoryVolume.Require(destination, parse.GetValue(allowDisk));
                if (publisher is null)
                {
                    await error.WriteLineAsync("warning: no --publisher-key: the manifest signature is not checked (contents are still authenticated with the model key)").ConfigureAwait(false);
                }

                var counters = new DecryptionProgress();
                var options = new ModelDecryptionOptions
                {
                    PublisherKey = publisher,
                    AllowDisk = parse.GetValue(allowDisk),
                    ExpectedKeyId = id,
                    Workers = workerCount,
                    Progress = counters,
                };

                // The key last: DecryptAsync takes ownership and zeroes it whatever happens.
                var key = await keys.GetAsync(parse, id, error, ct).ConfigureAwait(false);
                ModelDecryptionResult result;
                var display = new ProgressDisplay(mode, error, counters);
                await using (display.ConfigureAwait(false))
                {
                    result = await ModelDecryptor.DecryptAsync(source, key, destination, options, ct).ConfigureAwait(false);
                    await display.CompleteAsync().ConfigureAwait(false);
                }

                await stdout.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"fetched {result.Files} files ({result.PlaintextBytes} bytes) of key id '{result.KeyId}' into {Path.GetFullPath(destination)}; manifest signature {(result.SignatureChecked ? "verified" : "not checked")}")).ConfigureAwait(false);
                return ExitCodes.Success;
            }
            catch (ModelException ex)
            {
                return await ModelDecryptCommand.ReportAsync(error, ex).ConfigureAwait(false);
            }
            catch (KeyReleaseException ex)
            {
                await error.WriteLineAsync("error: " + ex.Message).ConfigureAwait(false);
                return ex.ExitCode;
            }
        });
        return command;
    }
}

/// <summary>How progress is shown.</summary>
public enum ProgressMode
{
    None,
    Bar,
    Json,
}

/// <summary>
/// Shows a <see cref="DecryptionProgress"/> on standard error while a decryption runs: a bar redrawn at most 10 times a
/// second (bytes done/total, throughput, time left, file), or one JSON object per line once a second
/// (<c>bytes, total, bytes_per_second, eta_seconds, file</c>), and a last line when done. Reads the counters only; the
/// decrypting threads never wait for it.
/// </summary>
public sealed class ProgressDisplay : IAsyncDisposable
{
    private readonly ProgressMode _mode;
    private readonly TextWriter _writer;
    private readonly DecryptionProgress _progress;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private readonly long _started = System.Diagnostics.Stopwatch.GetTimestamp();
    private readonly object _gate = new();
    private int _lastWidth;
    private bool _completed;

    public ProgressDisplay(ProgressMode mode, TextWriter writer, DecryptionProgress progress)
    {
        _mode = mode;
        _writer = writer;
        _progress = progress;
        _loop = mode == ProgressMode.None ? Task.CompletedTask : Task.Run(LoopAsync);
    }

    /// <summary>auto: a bar when standard error is this process's terminal, JSON lines otherwise (a pipe, a log collector, a test).</summary>
    public static ProgressMode ResolveMode(string name, TextWriter error) => name switch
    {
        "bar" => ProgressMode.Bar,
        "json" => ProgressMode.Json,
        "none" => ProgressMode.None,
        _ => ReferenceEquals(error, Console.Error) && !Console.IsErrorRedirected ? ProgressMode.Bar : ProgressMode.Json,
    };

    /// <summary>One JSON progress line (no newline).</summary>
    public static string JsonLine(long bytes, long total, double bytesPerSecond, double? etaSeconds, string? file)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteNumber("bytes", bytes);
            json.WriteNumber("total", total);
            json.WriteNumber("bytes_per_second", Math.Round(bytesPerSecond));
            if (etaSeconds is { } eta)
            {
                json.WriteNumber("eta_seconds", Math.Round(eta, 1));
            }
            else
            {
                json.WriteNull("eta_seconds");
            }

            if (file is null)
            {
                json.WriteNull("file");
            }
            else
            {
                json.WriteString("file", file);
            }

            json.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    /// <summary>One bar line (no carriage return), e.g. <c>[#######.......]  1.20 GiB / 2.00 GiB  1.05 GiB/s  0:01 left  model.safetensors</c>.</summary>
    public static string BarLine(long bytes, long total, double bytesPerSecond, double? etaSeconds, string? file, int width = 24)
    {
        var fraction = total > 0 ? Math.Clamp(bytes / (double)total, 0, 1) : 0;
        var filled = (int)Math.Round(fraction * width);
        var line = new StringBuilder();
        line.Append('[').Append('#', filled).Append('.', width - filled).Append("] ");
        line.Append(CultureInfo.InvariantCulture, $"{fraction * 100,5:F1}%  {Size(bytes)} / {Size(Math.Max(total, 0))}  {Size((long)bytesPerSecond)}/s  ");
        line.Append(etaSeconds is { } eta ? Duration(eta) + " left" : "--:-- left");
        if (file is not null)
        {
            line.Append("  ").Append(file.Length > 40 ? "..." + file[^37..] : file);
        }

        return line.ToString();
    }

    /// <summary>Draws the final state (100 %) once.</summary>
    public async Task CompleteAsync()
    {
        await StopLoopAsync().ConfigureAwait(false);
        lock (_gate)
        {
            _completed = true;
            Render(final: true);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopLoopAsync().ConfigureAwait(false);
        lock (_gate)
        {
            if (!_completed && _mode == ProgressMode.Bar && _lastWidth > 0)
            {
                // Leave the last bar on its own line, so an error message that follows starts on a fresh one.
                _writer.WriteLine();
            }

            _completed = true;
        }

        _stop.Dispose();
    }

    private async Task StopLoopAsync()
    {
        if (!_stop.IsCancellationRequested)
        {
            await _stop.CancelAsync().ConfigureAwait(false);
        }

        try
        {
            await _loop.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task LoopAsync()
    {
        using var timer = new PeriodicTimer(_mode == ProgressMode.Bar ? TimeSpan.FromMilliseconds(100) : TimeSpan.FromSeconds(1));
        while (await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false))
        {
            lock (_gate)
            {
                if (!_completed)
                {
                    Render(final: false);
                }
            }
        }
    }

    private void Render(bool final)
    {
        if (_mode == ProgressMode.None)
        {
            return;
        }

        var total = _progress.TotalBytes;
        if (total < 0)
        {
            return; // manifest not read yet
        }

        var bytes = _progress.BytesDone;
        var seconds = System.Diagnostics.Stopwatch.GetElapsedTime(_started).TotalSeconds;
        var rate = seconds > 0 ? bytes / seconds : 0;
        double? eta = final ? 0 : rate > 0 ? (total - bytes) / rate : null;
        var file = _progress.CurrentFile;
        if (_mode == ProgressMode.Json)
        {
            _writer.WriteLine(JsonLine(bytes, total, rate, eta, file));
            _writer.Flush();
            return;
        }

        var line = BarLine(bytes, total, rate, eta, file);
        var pad = Math.Max(0, _lastWidth - line.Length);
        _writer.Write("\r" + line + new string(' ', pad));
        _lastWidth = line.Length;
        if (final)
        {
            _writer.WriteLine();
        }

        _writer.Flush();
    }

    private static string Size(long bytes) => bytes switch
    {
        >= 1L << 30 => (bytes / (double)(1L << 30)).ToString("F2", CultureInfo.InvariantCulture) + " GiB",
        >= 1L << 20 => (bytes / (double)(1L << 20)).ToString("F1", CultureInfo.InvariantCulture) + " MiB",
        >= 1L << 10 => (bytes / (double)(1L << 10)).ToString("F1", CultureInfo.InvariantCulture) + " KiB",
        _ => bytes.ToString(CultureInfo.InvariantCulture) + " B",
    };

    private static string Duration(double seconds)
    {
        var s = (long)Math.Ceiling(Math.Max(0, seconds));
        return s >= 3600
            ? string.Create(CultureInfo.InvariantCulture, $"{s / 3600}:{s / 60 % 60:D2}:{s % 60:D2}")
            : string.Create(CultureInfo.InvariantCulture, $"{s / 60}:{s % 60:D2}");
    }
}
