using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using AttestBroker.Agent.Providers;
using AttestBroker.Evidence;
using AttestBroker.HardwareSim;
using AttestBroker.HardwareSim.ConfigFs;
using AttestBroker.HardwareSim.Pki;
using AttestBroker.HardwareSim.Profiles;

namespace AttestBroker.Agent.Tests;

/// <summary>
/// Plays the kernel's part of configfs-tsm in an ordinary directory. On mkdir of an entry it lays out the attribute
/// files (provider, generation 0, inblob, auxblob, privlevel_floor) and makes <c>outblob</c> a FIFO: like the kernel,
/// evidence is generated when outblob is read. A thread blocked on the FIFO's write end wakes when the provider opens
/// it, reads the 64 bytes of inblob, has the simulator lay out the report (<see cref="ConfigFsTsmLayout.WriteReport"/>)
/// in a scratch directory, moves its auxblob and generation into the entry and streams its outblob through the FIFO.
/// </summary>
internal sealed partial class TsmKernelEmulator : ITsmReportKernel, IDisposable
{
    private readonly SimPki _pki;
    private readonly TeeKind _tee;
    private readonly string _scratch;
    private readonly ConcurrentDictionary<string, (Task Server, StrongBox<bool> Opened)> _servers = new();

    public TsmKernelEmulator(SimPki pki, TeeKind tee)
    {
        _pki = pki;
        _tee = tee;
        _scratch = Directory.CreateTempSubdirectory("ab-tsm-scratch-").FullName;
    }

    /// <summary>The provider attribute's text (tdx_guest / sev_guest by default).</summary>
    public string? ProviderOverride { get; set; }

    /// <summary>How many of the next entries see another writer: their generation moves by 2 instead of 1.</summary>
    public int RacedEntries { get; set; }

    /// <summary>Faults applied to the evidence generated.</summary>
    public HashSet<AttestBroker.HardwareSim.Faults.SimFault> Faults { get; } = [];

    /// <summary>Every inblob read when evidence was generated.</summary>
    public ConcurrentQueue<byte[]> ReportDataSeen { get; } = new();

    /// <summary>Every outblob served.</summary>
    public ConcurrentQueue<byte[]> Served { get; } = new();

    public int EntriesCreated => _entries;

    private int _entries;

    public void EntryCreated(string entry)
    {
        Interlocked.Increment(ref _entries);
        File.WriteAllText(Path.Combine(entry, "provider"), (ProviderOverride ?? (_tee == TeeKind.Tdx ? "tdx_guest" : "sev_guest")) + "\n");
        File.WriteAllText(Path.Combine(entry, "generation"), "0\n");
        File.WriteAllBytes(Path.Combine(entry, "inblob"), []);
        File.WriteAllBytes(Path.Combine(entry, "auxblob"), []);
        File.WriteAllText(Path.Combine(entry, "privlevel_floor"), "0\n");
        var outblob = Path.Combine(entry, "outblob");
        if (MkFifo(outblob, 0x1A4 /* 0644 */) != 0)
        {
            throw new IOException($"mkfifo {outblob} failed: errno {Marshal.GetLastPInvokeError()}");
        }

        var raced = false;
        lock (_servers)
        {
            if (RacedEntries > 0)
            {
                RacedEntries--;
                raced = true;
            }
        }

        var opened = new StrongBox<bool>(false);
        _servers[entry] = (Task.Factory.StartNew(() => Serve(entry, raced, opened), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default), opened);
    }

    public void EntryRemoving(string entry)
    {
        if (_servers.TryRemove(entry, out var state))
        {
            var (server, opened) = state;
            if (!Volatile.Read(ref opened.Value))
            {
                // Nobody read outblob: open the read end so the writer's open returns, and drain what it writes.
                using var reader = new FileStream(Path.Combine(entry, "outblob"), FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 0);
                reader.CopyTo(Stream.Null);
            }

            server.Wait();
        }

        foreach (var file in Directory.EnumerateFiles(entry))
        {
            File.Delete(file);
        }
    }

    private void Serve(string entry, bool raced, StrongBox<bool> opened)
    {
        try
        {
            using var writer = new FileStream(Path.Combine(entry, "outblob"), FileMode.Open, FileAccess.Write, FileShare.ReadWrite, bufferSize: 0);
            Volatile.Write(ref opened.Value, true);
            var inblob = File.ReadAllBytes(Path.Combine(entry, "inblob"));
            if (inblob.Length != 64)
            {
                return; // no report data written: the kernel would fail the read
            }

            ReportDataSeen.Enqueue(inblob);
            var dir = Path.Combine(_scratch, Path.GetFileName(entry));
            var options = new EvidenceOptions { ReportData = inblob };
            foreach (var f in Faults)
            {
                options.Faults.Add(f);
            }

            var evidence = ConfigFsTsmLayout.WriteReport(dir, _pki, SimProfile.Default(), _tee, options, generation: raced ? 2 : 1);
            File.Copy(Path.Combine(dir, "auxblob"), Path.Combine(entry, "auxblob"), overwrite: true);
            File.WriteAllText(Path.Combine(entry, "generation"), File.ReadAllText(Path.Combine(dir, "generation")).Trim() + "\n");
            Served.Enqueue(evidence);
            writer.Write(File.ReadAllBytes(Path.Combine(dir, "outblob")));
        }
        catch (IOException)
        {
            // The reader went away (EPIPE): nothing more to do.
        }
    }

    public void Dispose()
    {
        foreach (var entry in _servers.Keys.ToList())
        {
            EntryRemoving(entry);
        }

        Directory.Delete(_scratch, recursive: true);
    }

    [LibraryImport("libc", EntryPoint = "mkfifo", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int MkFifo(string path, uint mode);
}
