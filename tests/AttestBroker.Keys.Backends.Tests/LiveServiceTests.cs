using AttestBroker.Keys.Backends.AzureKeyVault;
using AttestBroker.Keys.Backends.Vault;

namespace AttestBroker.Keys.Backends.Tests;

/// <summary>
/// The same journeys as the contract tests, against a real service when the environment names one
/// (docs/backends.md gives the manual steps). Skipped, with the reason, when it does not.
/// </summary>
public sealed class LiveServiceTests : StorageFixture
{
    [Test]
    public async Task Real_vault_dev_server_creates_releases_and_rotates()
    {
        string? addr = Environment.GetEnvironmentVariable("ATTESTBROKER_VAULT_ADDR");
        string? token = Environment.GetEnvironmentVariable("ATTESTBROKER_VAULT_TOKEN");
        if (string.IsNullOrEmpty(addr) || string.IsNullOrEmpty(token))
        {
            Assert.Ignore("ATTESTBROKER_VAULT_ADDR and ATTESTBROKER_VAULT_TOKEN are not set: no real Vault to test against (the Vault contract tests ran against the local Vault-shaped server)");
        }

        using var client = new VaultTransitClient(new VaultTransitOptions
        {
            Address = new Uri(addr),
            Token = token,
            KeyName = Environment.GetEnvironmentVariable("ATTESTBROKER_VAULT_TRANSIT_KEY") ?? "attestbroker-test",
            Mount = Environment.GetEnvironmentVariable("ATTESTBROKER_VAULT_TRANSIT_MOUNT") ?? "transit",
        });
        var backend = new VaultTransitKeyBackend(client, Storage.Keys);
        string id = "live-" + Guid.NewGuid().ToString("N")[..8];
        await backend.CreateAsync(id);
        byte[] before = await ReleaseAsync(backend, id);
        KekRotationResult rotated = await backend.RotateKekAsync();
        Assert.That(rotated.Rewrapped, Is.EqualTo(1));
        Assert.That(await ReleaseAsync(backend, id), Is.EqualTo(before));
        Assert.That((await backend.CheckHealthAsync()).Healthy, Is.True);
    }

    [Test]
    public async Task Real_key_vault_wraps_releases_and_rewraps()
    {
        string? uri = Environment.GetEnvironmentVariable("ATTESTBROKER_KEYVAULT_URI");
        string? key = Environment.GetEnvironmentVariable("ATTESTBROKER_KEYVAULT_KEY");
        if (string.IsNullOrEmpty(uri) || string.IsNullOrEmpty(key))
        {
            Assert.Ignore("ATTESTBROKER_KEYVAULT_URI and ATTESTBROKER_KEYVAULT_KEY are not set: no real Key Vault to test against (the Key Vault contract tests ran against the local Key Vault-shaped server)");
        }

        var client = new KeyVaultKeyClient(new KeyVaultKeyClientOptions { VaultUri = new Uri(uri), Credential = AzureCredentialKind.Default });
        var backend = new KeyVaultEnvelopeKeyBackend(client, Storage.Keys, key,
            rotateInVault: Environment.GetEnvironmentVariable("ATTESTBROKER_KEYVAULT_ROTATE") == "1");
        string id = "live-" + Guid.NewGuid().ToString("N")[..8];
        await backend.CreateAsync(id);
        byte[] before = await ReleaseAsync(backend, id);
        await backend.RotateKekAsync();
        Assert.That(await ReleaseAsync(backend, id), Is.EqualTo(before));
        Assert.That((await backend.CheckHealthAsync()).Healthy, Is.True);
    }
}
