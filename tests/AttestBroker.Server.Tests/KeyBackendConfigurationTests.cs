using NUnit.Framework;

namespace AttestBroker.Server.Tests;

/// <summary>Bad Broker:KeyBackends settings stop the start with a message naming the setting (and never a secret).</summary>
[TestFixture]
public sealed class Key_backend_settings_are_validated_at_start_up
{
    private string _dir = null!;
    private string _tokenFile = null!;

    [SetUp]
    public void CreateDirectory()
    {
        _dir = Directory.CreateTempSubdirectory("ab-backend-config-").FullName;
        _tokenFile = Path.Combine(_dir, "vault-token");
        File.WriteAllText(_tokenFile, "hvs.a-token-that-must-never-be-printed");
    }

    [TearDown]
    public void DeleteDirectory() => Directory.Delete(_dir, recursive: true);

    private string StartFailure(Dictionary<string, string?> backends)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Broker:DataDirectory"] = Path.Combine(_dir, "data"),
            ["Broker:Port"] = "0",
            ["Broker:DevCertificate"] = "true",
        };
        foreach (var (k, v) in backends)
        {
            settings[k] = v;
        }

        var ex = Assert.ThrowsAsync<BrokerStartupException>(async () => await (await BrokerHost.CreateAsync([], settings)).DisposeAsync());
        Assert.That(ex!.Message, Does.Not.Contain("hvs.a-token-that-must-never-be-printed"));
        return ex.Message;
    }

    [Test]
    public void A_vault_backend_without_an_address_is_refused_naming_the_setting()
    {
        var message = StartFailure(new()
        {
            ["Broker:KeyBackends:vault-prod:Type"] = "vault-transit",
            ["Broker:KeyBackends:vault-prod:Key"] = "model-keys",
            ["Broker:KeyBackends:vault-prod:TokenFile"] = _tokenFile,
        });
        Assert.That(message, Does.Contain("Broker:KeyBackends:vault-prod:Address is required"));
    }

    [Test]
    public void An_unknown_type_is_refused_listing_the_known_ones()
    {
        var message = StartFailure(new() { ["Broker:KeyBackends:hsm:Type"] = "pkcs11" });
        Assert.That(message, Does.Contain("Broker:KeyBackends:hsm:Type must be one of vault-transit, azure-keyvault, azure-skr, kubernetes-secrets"));
    }

    [Test]
    public void An_unreadable_token_file_is_refused()
    {
        var message = StartFailure(new()
        {
            ["Broker:KeyBackends:vault-prod:Type"] = "vault-transit",
            ["Broker:KeyBackends:vault-prod:Address"] = "https://vault.example:8200",
            ["Broker:KeyBackends:vault-prod:Key"] = "model-keys",
            ["Broker:KeyBackends:vault-prod:TokenFile"] = Path.Combine(_dir, "no-such-token"),
        });
        Assert.That(message, Does.Contain("Broker:KeyBackends:vault-prod:TokenFile").And.Contain("cannot be read"));
    }

    [Test]
    public void An_unreadable_client_secret_file_is_refused()
    {
        var message = StartFailure(new()
        {
            ["Broker:KeyBackends:kv:Type"] = "azure-keyvault",
            ["Broker:KeyBackends:kv:VaultUri"] = "https://contoso.vault.azure.net",
            ["Broker:KeyBackends:kv:WrappingKey"] = "model-kek",
            ["Broker:KeyBackends:kv:Credential"] = "client-secret",
            ["Broker:KeyBackends:kv:TenantId"] = "t",
            ["Broker:KeyBackends:kv:ClientId"] = "c",
            ["Broker:KeyBackends:kv:ClientSecretFile"] = Path.Combine(_dir, "missing-secret"),
        });
        Assert.That(message, Does.Contain("Broker:KeyBackends:kv:ClientSecretFile").And.Contain("cannot be read"));
    }

    [Test]
    public void A_token_given_as_a_plain_setting_is_refused_without_echoing_it()
    {
        var message = StartFailure(new()
        {
            ["Broker:KeyBackends:vault-prod:Type"] = "vault-transit",
            ["Broker:KeyBackends:vault-prod:Address"] = "https://vault.example:8200",
            ["Broker:KeyBackends:vault-prod:Key"] = "model-keys",
            ["Broker:KeyBackends:vault-prod:Token"] = "hvs.a-token-that-must-never-be-printed",
        });
        Assert.That(message, Does.Contain("Broker:KeyBackends:vault-prod:Token: secrets are read from files only"));
    }

    [Test]
    public void A_misspelt_setting_is_refused()
    {
        var message = StartFailure(new()
        {
            ["Broker:KeyBackends:k8s:Type"] = "kubernetes-secrets",
            ["Broker:KeyBackends:k8s:Namespace"] = "attestbroker",
            ["Broker:KeyBackends:k8s:Namspace"] = "oops",
        });
        Assert.That(message, Does.Contain("Broker:KeyBackends:k8s").And.Contain("Namspace"));
    }

    [Test]
    public void A_default_naming_no_configured_backend_is_refused()
    {
        var message = StartFailure(new() { ["Broker:KeyBackends:Default"] = "vault-prod" });
        Assert.That(message, Does.Contain("Broker:KeyBackends:Default names 'vault-prod', which is not configured (configured: embedded)"));
    }

    [Test]
    public void The_reserved_name_embedded_and_names_that_are_not_dns_labels_are_refused()
    {
        var reserved = StartFailure(new() { ["Broker:KeyBackends:embedded:Type"] = "kubernetes-secrets" });
        Assert.That(reserved, Does.Contain("the name 'embedded' is reserved"));
        var bad = StartFailure(new() { ["Broker:KeyBackends:Vault_Prod:Type"] = "vault-transit" });
        Assert.That(bad, Does.Contain("Broker:KeyBackends:Vault_Prod: a backend name is"));
    }

    [Test]
    public void An_skr_wrapping_key_file_that_holds_no_rsa_private_key_is_refused()
    {
        var policy = Path.Combine(_dir, "policy.json");
        File.WriteAllText(policy, """{"version":"1.0.0","anyOf":[]}""");
        var key = Path.Combine(_dir, "rsa.pem");
        using (var rsa = System.Security.Cryptography.RSA.Create(2048))
        {
            File.WriteAllText(key, rsa.ExportSubjectPublicKeyInfoPem());
        }

        var message = StartFailure(new()
        {
            ["Broker:KeyBackends:skr:Type"] = "azure-skr",
            ["Broker:KeyBackends:skr:VaultUri"] = "https://contoso.managedhsm.azure.net",
            ["Broker:KeyBackends:skr:ReleasePolicyFile"] = policy,
            ["Broker:KeyBackends:skr:WrappingKeyFile"] = key,
        });
        Assert.That(message, Does.Contain("Broker:KeyBackends:skr").And.Contain("holds no RSA private key"));
    }
}
