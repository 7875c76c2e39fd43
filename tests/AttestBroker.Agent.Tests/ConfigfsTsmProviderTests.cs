using System.Security.Cryptography;
using AttestBroker.Agent.Providers;
using AttestBroker.Evidence;
using AttestBroker.Evidence.Snp;
using AttestBroker.Evidence.Tdx;
using AttestBroker.HardwareSim.Pki;
using NUnit.Framework;

namespace AttestBroker.Agent.Tests;

/// <summary>The configfs-tsm provider against the simulator's configfs-tsm layout, with a test kernel serving outblob through a FIFO.</summary>
[NonParallelizable]
public sealed class ConfigfsTsmProviderTests
{
    private static SimPki _pki = null!;
    private string _root = null!;

    [OneTimeSetUp]
    public static void MakePki() => _pki = SimPki.Create(null, [AmdProduct.Milan]);

    [OneTimeTearDown]
    public static void DisposePki() => _pki.Dispose();

    [SetUp]
    public void MakeRoot() => _root = Directory.CreateTempSubdirectory("ab-tsm-report-").FullName;

    [TearDown]
    public void RemoveRoot() => Directory.Delete(_root, recursive: true);

    private ConfigfsTsmProvider Provider(TsmKernelEmulator kernel) => new(_root) { Kernel = kernel };

    [Test]
    public async Task Tdx_quote_binds_the_report_data_written_to_inblob_and_the_entry_is_removed()
    {
        using var kernel = new TsmKernelEmulator(_pki, TeeKind.Tdx);
        var provider = Provider(kernel);
        var reportData = RandomNumberGenerator.GetBytes(64);

        var evidence = await provider.GetEvidenceAsync(reportData, CancellationToken.None);

        Assert.Multiple(() =>
        {
            Assert.That(evidence.Tee, Is.EqualTo(TeeKind.Tdx));
            Assert.That(evidence.Provider, Is.EqualTo("configfs-tsm"));
            Assert.That(evidence.Certificates, Is.Null, "TDX has no auxblob content");
            Assert.That(kernel.ReportDataSeen.Single(), Is.EqualTo(reportData), "one write of exactly the 64 bytes");
            Assert.That(evidence.Bytes, Is.EqualTo(kernel.Served.Single()));
            Assert.That(TdxQuote.Parse(evidence.Bytes).Body.ReportData.ToArray(), Is.EqualTo(reportData));
            Assert.That(Directory.EnumerateFileSystemEntries(_root), Is.Empty, "the report entry is removed");
        });
    }

    [Test]
    public async Task Snp_report_comes_with_the_certificate_table_from_auxblob()
    {
        using var kernel = new TsmKernelEmulator(_pki, TeeKind.SevSnp);
        var provider = Provider(kernel);
        var reportData = RandomNumberGenerator.GetBytes(64);

        Assert.That(await provider.GetTeeKindAsync(CancellationToken.None), Is.EqualTo(TeeKind.SevSnp));
        var evidence = await provider.GetEvidenceAsync(reportData, CancellationToken.None);

        Assert.Multiple(() =>
        {
            Assert.That(evidence.Tee, Is.EqualTo(TeeKind.SevSnp));
            Assert.That(SnpReport.Parse(evidence.Bytes).ReportData.ToArray(), Is.EqualTo(reportData));
            Assert.That(SnpCertificateTable.Parse(evidence.Certificates!).Select(e => e.Kind), Is.EqualTo(new[] { SnpCertificateKind.Vcek, SnpCertificateKind.Ask, SnpCertificateKind.Ark }));
            Assert.That(Directory.EnumerateFileSystemEntries(_root), Is.Empty);
        });
    }

    [Test]
    public async Task Tee_kind_is_read_from_the_provider_attribute_of_a_fresh_entry()
    {
        using var kernel = new TsmKernelEmulator(_pki, TeeKind.Tdx);
        Assert.That(await Provider(kernel).GetTeeKindAsync(CancellationToken.None), Is.EqualTo(TeeKind.Tdx));
        Assert.That(Directory.EnumerateFileSystemEntries(_root), Is.Empty);
    }

    [Test]
    public async Task Generation_moved_by_another_writer_once_is_retried_with_a_new_entry()
    {
        using var kernel = new TsmKernelEmulator(_pki, TeeKind.Tdx) { RacedEntries = 1 };
        var reportData = RandomNumberGenerator.GetBytes(64);

        var evidence = await Provider(kernel).GetEvidenceAsync(reportData, CancellationToken.None);

        Assert.That(kernel.EntriesCreated, Is.EqualTo(2));
        Assert.That(evidence.Bytes, Is.EqualTo(kernel.Served.Last()));
    }

    [Test]
    public void Generation_moved_by_another_writer_twice_is_refused_as_raced()
    {
        using var kernel = new TsmKernelEmulator(_pki, TeeKind.Tdx) { RacedEntries = 2 };
        var ex = Assert.ThrowsAsync<EvidenceProviderException>(() => Provider(kernel).GetEvidenceAsync(new byte[64], CancellationToken.None))!;
        Assert.Multiple(() =>
        {
            Assert.That(ex.Error, Is.EqualTo(EvidenceProviderError.Raced));
            Assert.That(ex.IsTransient, Is.True);
            Assert.That(ex.Message, Does.Contain("generation 0 became 2, expected 1"));
            Assert.That(Directory.EnumerateFileSystemEntries(_root), Is.Empty);
        });
    }

    [Test]
    public void Unknown_provider_attribute_is_refused_by_name()
    {
        using var kernel = new TsmKernelEmulator(_pki, TeeKind.Tdx) { ProviderOverride = "arm_cca_guest" };
        var ex = Assert.ThrowsAsync<EvidenceProviderException>(() => Provider(kernel).GetEvidenceAsync(new byte[64], CancellationToken.None))!;
        Assert.That(ex.Error, Is.EqualTo(EvidenceProviderError.InvalidResponse));
        Assert.That(ex.Message, Does.Contain("arm_cca_guest"));
    }

    [Test]
    public void Missing_report_directory_is_not_available_with_the_reason()
    {
        var provider = new ConfigfsTsmProvider(Path.Combine(_root, "no-such", "report"));
        var ex = Assert.ThrowsAsync<EvidenceProviderException>(() => provider.GetEvidenceAsync(new byte[64], CancellationToken.None))!;
        Assert.Multiple(() =>
        {
            Assert.That(ex.Error, Is.EqualTo(EvidenceProviderError.NotAvailable));
            Assert.That(ex.Message, Does.Contain("ENOENT").And.Contain("configfs-tsm"));
        });
    }

    [Test]
    public void Report_data_of_the_wrong_length_is_refused_before_touching_configfs()
    {
        using var kernel = new TsmKernelEmulator(_pki, TeeKind.Tdx);
        var ex = Assert.ThrowsAsync<EvidenceProviderException>(() => Provider(kernel).GetEvidenceAsync(new byte[32], CancellationToken.None))!;
        Assert.That(ex.Error, Is.EqualTo(EvidenceProviderError.InvalidRequest));
        Assert.That(kernel.EntriesCreated, Is.Zero);
    }

    [TestCase(13, EvidenceProviderError.PermissionDenied, "permission denied")]
    [TestCase(2, EvidenceProviderError.NotAvailable, "not present")]
    [TestCase(16, EvidenceProviderError.Busy, "busy")]
    [TestCase(5, EvidenceProviderError.Busy, "quoting service")]
    public void Errno_is_classified_with_a_hint_for_the_operator(int errno, EvidenceProviderError expected, string hint)
    {
        Assert.That(Libc.Classify(errno), Is.EqualTo(expected));
        Assert.That(Libc.Hint(errno), Does.Contain(hint));
    }

    [Test]
    public void Detection_prefers_configfs_then_tdx_device_then_sev_device()
    {
        var configfs = Path.Combine(_root, "tsm", "report");
        var tdx = Path.Combine(_root, "tdx_guest");
        var sev = Path.Combine(_root, "sev-guest");
        var paths = new EvidenceProviderPaths { ConfigfsRoot = configfs, TdxDevices = [tdx], SevDevice = sev };

        var none = Assert.Throws<EvidenceProviderException>(() => EvidenceProviders.Detect(paths))!;
        Assert.That(none.Error, Is.EqualTo(EvidenceProviderError.NotAvailable));
        Assert.That(none.Message, Does.Contain(configfs).And.Contain(tdx).And.Contain(sev));

        File.WriteAllBytes(sev, []);
        Assert.That(EvidenceProviders.Detect(paths), Is.InstanceOf<SevGuestIoctlProvider>());
        File.WriteAllBytes(tdx, []);
        Assert.That(EvidenceProviders.Detect(paths), Is.InstanceOf<TdxGuestIoctlProvider>());
        Directory.CreateDirectory(configfs);
        Assert.That(EvidenceProviders.Detect(paths), Is.InstanceOf<ConfigfsTsmProvider>());
    }

    [TestCase("configfs", typeof(ConfigfsTsmProvider))]
    [TestCase("configfs:/x/tsm/report", typeof(ConfigfsTsmProvider))]
    [TestCase("tdx-ioctl", typeof(TdxGuestIoctlProvider))]
    [TestCase("sev-ioctl", typeof(SevGuestIoctlProvider))]
    [TestCase("sim:http://127.0.0.1:8088", typeof(SimulatorProvider))]
    public void Named_provider_is_created(string spec, Type expected)
    {
        var provider = EvidenceProviders.Create(spec);
        Assert.That(provider, Is.InstanceOf(expected));
        (provider as IDisposable)?.Dispose();
    }

    [TestCase("tpm")]
    [TestCase("sim:not-a-url")]
    [TestCase("configfs:")]
    public void Unknown_provider_specification_is_an_invalid_request(string spec)
    {
        var ex = Assert.Throws<EvidenceProviderException>(() => EvidenceProviders.Create(spec))!;
        Assert.That(ex.Error, Is.EqualTo(EvidenceProviderError.InvalidRequest));
    }
}
