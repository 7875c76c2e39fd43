using System.Diagnostics;
using System.Security.Cryptography;
using AttestBroker.Server.Admin;
using NUnit.Framework;

namespace AttestBroker.Server.Tests;

/// <summary>Broker:Secrets:AuditHeadKeyFile / AdminSigningKeyFile read the files docs/deploy.md tells operators to make with openssl.</summary>
[TestFixture]
public sealed class Shared_admin_key_files
{
    private string _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("ab-adminkeys-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    [TestCase("DER")]
    [TestCase("PEM")]
    public void An_openssl_genpkey_p256_key_signs_the_audit_heads(string form)
    {
        var file = Path.Combine(_dir, "audit-head.key");
        OpenSsl($"genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -outform {form} -out {file}");
        SetMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var publicPem = OpenSsl($"pkey -inform {form} -in {file} -pubout");

        using var setup = AdminSetup.Create(new AdminOptions { LocalSigner = false }, _dir, TimeProvider.System, secrets: new BrokerSecretsOptions { AuditHeadKeyFile = file });
        using var expected = ECDsa.Create();
        expected.ImportFromPem(publicPem);
        Assert.That(setup.HeadPublicKeyPem, Is.EqualTo(expected.ExportSubjectPublicKeyInfoPem()));
        Assert.That(File.Exists(Path.Combine(_dir, AdminSetup.AuditHeadKeyFile)), Is.True, "the given file is the one in this test's folder");
        Assert.That(Directory.GetFiles(_dir), Has.Length.EqualTo(1), "no admin-signing.key made with the local signer off");
    }

    [Test]
    public void A_file_readable_by_others_is_refused()
    {
        var file = Path.Combine(_dir, "audit-head.key");
        using (var key = ECDsa.Create(ECCurve.NamedCurves.nistP256))
        {
            File.WriteAllBytes(file, key.ExportPkcs8PrivateKey());
        }

        SetMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);
        var ex = Assert.Throws<BrokerStartupException>(() => AdminSetup.Create(new AdminOptions { LocalSigner = false }, _dir, TimeProvider.System, secrets: new BrokerSecretsOptions { AuditHeadKeyFile = file }));
        Assert.That(ex!.Message, Does.Contain("0600"));
    }

    [Test]
    public void A_public_key_pem_is_refused()
    {
        var file = Path.Combine(_dir, "audit-head.key");
        using (var key = ECDsa.Create(ECCurve.NamedCurves.nistP256))
        {
            File.WriteAllText(file, key.ExportSubjectPublicKeyInfoPem());
        }

        SetMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var ex = Assert.Throws<BrokerStartupException>(() => AdminSetup.Create(new AdminOptions { LocalSigner = false }, _dir, TimeProvider.System, secrets: new BrokerSecretsOptions { AuditHeadKeyFile = file }));
        Assert.That(ex!.Message, Does.Contain("PRIVATE KEY"));
    }

    private static void SetMode(string file, UnixFileMode mode)
    {
        if (OperatingSystem.IsWindows())
        {
            Assert.Ignore("file modes are a Unix check");
            return;
        }

        File.SetUnixFileMode(file, mode);
    }

    private static string OpenSsl(string arguments)
    {
        ProcessStartInfo start = new("openssl", arguments) { RedirectStandardOutput = true, RedirectStandardError = true };
        Process? process;
        try
        {
            process = Process.Start(start);
        }
        catch (System.ComponentModel.Win32Exception)
        {
            Assert.Ignore("openssl is not installed");
            return string.Empty;
        }

        using (var p = process ?? throw new InvalidOperationException("openssl did not start"))
        {
            var output = p.StandardOutput.ReadToEnd();
            var error = p.StandardError.ReadToEnd();
            p.WaitForExit();
            Assert.That(p.ExitCode, Is.Zero, "openssl " + arguments + ": " + error);
            return output;
        }
    }
}

[TestFixture]
public sealed class Token_signing_key_file
{
    [Test]
    public void An_openssl_3_genpkey_der_key_as_docs_deploy_makes_it_is_read()
    {
        var dir = Directory.CreateTempSubdirectory("ab-tokenkey-").FullName;
        try
        {
            var file = Path.Combine(dir, "token-signing.key");
            using (var openssl = Process.Start(new ProcessStartInfo("openssl", $"genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -outform DER -out {file}") { RedirectStandardError = true }))
            {
                if (openssl is null)
                {
                    Assert.Ignore("openssl did not start");
                    return;
                }

                openssl.WaitForExit();
                Assert.That(openssl.ExitCode, Is.Zero);
            }

            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }

            using var signer = TokenSigner.LoadExisting(file);
            Assert.That(signer.JwksJson, Does.Contain("\"P-256\""));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
