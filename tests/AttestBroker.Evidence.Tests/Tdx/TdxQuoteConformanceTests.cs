using AttestBroker.Evidence.Tdx;
using AttestBroker.Testing;
using NUnit.Framework;

namespace AttestBroker.Evidence.Tests.Tdx;

/// <summary>The parser reads every field of the real quotes exactly as VECTORS.md §4.1 lists them.</summary>
[TestFixture]
public sealed class Real_quotes_parse_to_the_documented_fields
{
    private const string Gt1 = "tdx/go-tdx-guest/tdx_prod_quote_SPR_E4.dat";
    private const string Gt2 = "tdx/go-tdx-guest/quote_v5_sample.dat";
    private const string Gt3 = "tdx/go-tdx-guest/ccel/cos-113-tdx-quote.dat";

    private static string Hex(ReadOnlyMemory<byte> m) => Convert.ToHexStringLower(m.Span);

    [Test]
    public void Gt1_v4_quote_header_body_and_signature_data_match_the_vector_record()
    {
        var q = TdxQuote.Parse(Vectors.Read(Gt1));
        Assert.Multiple(() =>
        {
            Assert.That(q.Version, Is.EqualTo(4));
            Assert.That(q.AttestationKeyType, Is.EqualTo(2));
            Assert.That(q.TeeType, Is.EqualTo(0x81u));
            Assert.That(Hex(q.QeVendorId), Is.EqualTo("939a7233f79c4ca9940a0db3957f0607"));
            Assert.That(q.IsIntelQe, Is.True);
            Assert.That(Hex(q.UserData), Is.EqualTo("739c3f292a15bace1f726351a70d4b7900000000"));
            Assert.That(q.SignedOffset, Is.Zero);
            Assert.That(q.SignedLength, Is.EqualTo(632));
            Assert.That(q.SignatureDataLength, Is.EqualTo(4299));
            Assert.That(q.TrailingByteCount, Is.EqualTo(39));
            Assert.That(q.Body.BodyType, Is.EqualTo(2));
            Assert.That(q.Body.IsTd15, Is.False);
            Assert.That(q.Body.TeeTcbSvn2, Is.Null);
            Assert.That(q.Body.MrServiceTd, Is.Null);
            Assert.That(Hex(q.Body.TeeTcbSvn), Is.EqualTo("03000400000000000000000000000000"));
            Assert.That(Hex(q.Body.MrSeam), Is.EqualTo("2fd279c16164a93dd5bf373d834328d46008c2b693af9ebb865b08b2ced320c9a89b4869a9fab60fbe9d0c5a5363c656"));
            Assert.That(Hex(q.Body.MrSignerSeam), Is.EqualTo(new string('0', 96)));
            Assert.That(Hex(q.Body.SeamAttributes), Is.EqualTo("0000000000000000"));
            Assert.That(Hex(q.Body.TdAttributes), Is.EqualTo("0000004000000000"));
            Assert.That(q.Body.Debug, Is.False);
            Assert.That(Hex(q.Body.Xfam), Is.EqualTo("e71a060000000000"));
            Assert.That(Hex(q.Body.MrTd), Is.EqualTo("6363b8043668a3ad953278e10389574d326c6749fb78aa810ecd9336923db86f22fc00b8dcd404bc10d5e119d7215cbb"));
            Assert.That(Hex(q.Body.MrConfigId), Is.EqualTo(new string('0', 96)));
            Assert.That(Hex(q.Body.MrOwner), Is.EqualTo(new string('0', 96)));
            Assert.That(Hex(q.Body.MrOwnerConfig), Is.EqualTo(new string('0', 96)));
            Assert.That(Hex(q.Body.Rtmr0), Is.EqualTo("2927da70461cd63266f43230cc1849c03ef25ebe490062a801d8fcc80af42976823adf08f833c1e50b51779c6593f32a"));
            Assert.That(Hex(q.Body.Rtmr1), Is.EqualTo("2c700b8ba9b85783f8be9fb9443647bdc0bb3c50747f06297cc6538c25a5f589c4b56d035c59107c6bc5800db2cacb61"));
            Assert.That(Hex(q.Body.Rtmr2), Is.EqualTo("8652f0caaba7e215ea442dc36a4499d8fec3362f3a0b2ca151cbe4b3e6466fe59c7368b3c2287fc7c3bf5c924eb4424e"));
            Assert.That(Hex(q.Body.Rtmr3), Is.EqualTo(new string('0', 96)));
            Assert.That(Hex(q.Body.ReportData), Is.EqualTo("6c62dec1b8191749a31dab490be532a35944dea47caef1f980863993d9899545eb7406a38d1eed313b987a467dacead6f0c87a6d766c66f6f29f8acb281f1113"));
            Assert.That(Hex(q.AttestationKey), Is.EqualTo("36f301ff1db5c282f9338966c5b8f5c7257e75b0210d0c6c8b1d4a7846e4e0e84c2121d448c7154d37ace210247a6e17271cd1468db8ac7fcd2473b34f7a43fc"));
            Assert.That(q.CertificationDataType, Is.EqualTo(6));
            Assert.That(q.PckCertificationDataType, Is.EqualTo(5));
            Assert.That(q.PckCertChainData.Length, Is.EqualTo(3677));
            Assert.That(q.PckCertChainPem, Does.StartWith("-----BEGIN CERTIFICATE-----"));
            Assert.That(Hex(q.QeAuthData), Is.EqualTo("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"));
            Assert.That(q.QeReport.Raw.Length, Is.EqualTo(384));
            Assert.That(Hex(q.QeReport.MrEnclave), Is.EqualTo("853e298f3b7cde28b06493d06fb2ad6f9566a97fea6d3de66236b2af1a35150f"));
            Assert.That(Hex(q.QeReport.MrSigner), Is.EqualTo("dc9e2a7c6f948f17474e34a7fc43ed030f7c1563f1babddf6340c82e0e54a8c5"));
            Assert.That(q.QeReport.IsvProdId, Is.EqualTo(2));
            Assert.That(q.QeReport.IsvSvn, Is.EqualTo(4));
            Assert.That(q.QeReport.MiscSelect, Is.Zero);
            Assert.That(Hex(q.QeReport.Attributes), Is.EqualTo("1500000000000000e700000000000000"));
            Assert.That(Hex(q.QeReport.CpuSvn), Is.EqualTo("04040d0f03ff00030000000000000000"));
        });
    }

    [Test]
    public void Gt2_v5_quote_with_td15_body_exposes_tee_tcb_svn2_and_mr_service_td()
    {
        var q = TdxQuote.Parse(Vectors.Read(Gt2));
        Assert.Multiple(() =>
        {
            Assert.That(q.Version, Is.EqualTo(5));
            Assert.That(q.Body.BodyType, Is.EqualTo(3));
            Assert.That(q.Body.Raw.Length, Is.EqualTo(648));
            Assert.That(q.BodyOffset, Is.EqualTo(0x36));
            Assert.That(q.SignedLength, Is.EqualTo(702));
            Assert.That(q.SignatureDataLength, Is.EqualTo(4300));
            Assert.That(q.TrailingByteCount, Is.Zero);
            Assert.That(Hex(q.UserData), Is.EqualTo("ba103c0e5dffa40351f9d5dd559888eb00000000"));
            Assert.That(Hex(q.Body.TeeTcbSvn), Is.EqualTo("0b010400000000000000000000000000"));
            Assert.That(Hex(q.Body.MrSeam), Is.EqualTo("7bf063280e94fb051f5dd7b1fc59ce9aac42bb961df8d44b709c9b0ff87a7b4df648657ba6d1189589feab1d5a3c9a9d"));
            Assert.That(Hex(q.Body.TdAttributes), Is.EqualTo("0000001000000000"));
            Assert.That(Hex(q.Body.Xfam), Is.EqualTo("e702060000000000"));
            Assert.That(Hex(q.Body.MrTd), Is.EqualTo("7348651a34b2d2d3462822e3a750ec6110125f36757c78480bbfc69cc0d21fb001a1ced3ee19747dda8f750c3bc8f876"));
            Assert.That(Hex(q.Body.Rtmr0), Is.EqualTo("5c8daf76063a71ac8fcef4067564661fc682ed7944c7a5d21dbbced02f61ceff4ba0678c6aef3bdae8cbc614cec24619"));
            Assert.That(Hex(q.Body.Rtmr1), Is.EqualTo("463acaace1b6e97c76e92e41fe312aa66f3fd4dad60ec7acf169859db0343e3d1e591646795cdc80fbc0ca5f7041d253"));
            Assert.That(Hex(q.Body.Rtmr2), Is.EqualTo("6369b9c9a3b791ebcbdc5a0bb9536cfb57f50df2b393b33c8b29616d3568baa61f4b59dc6092e31ea8764bcbdfc69f20"));
            Assert.That(Hex(q.Body.ReportData), Is.EqualTo("945eaacf5abc1f719d8666a942fda03d1edcb4490277396093dc5a5289ab9f1e094aed63060cd4a4933a4dd537ed1255c9c79ecb3ed82cd1b486233e31c25c3a"));
            Assert.That(Hex(q.Body.TeeTcbSvn2!.Value), Is.EqualTo("0d010400000000000000000000000000"));
            Assert.That(Hex(q.Body.MrServiceTd!.Value), Is.EqualTo(new string('0', 96)));
            Assert.That(Hex(q.AttestationKey), Is.EqualTo("4763cf2f3848919fd0aec8f6e8f21e85e244b431102c25b341f8016731e892b3029c8774bd88085e775cb36e2359fbac455e6963a073e12babaf28d9b81d9674"));
            Assert.That(Hex(q.QeReport.MrEnclave), Is.EqualTo("b7ae9ab69e76f7794a56b0db1915281d435d488c91d406ed33a7939caf8730f8"));
            Assert.That(q.QeReport.IsvSvn, Is.EqualTo(7));
            Assert.That(Hex(q.QeReport.CpuSvn), Is.EqualTo("0404191b04ff00060000000000000000"));
            Assert.That(q.PckCertChainData.Length, Is.EqualTo(3678));
            Assert.That(q.PckCertChainData.Span[^1], Is.Zero, "GT-2's chain is NUL-terminated");
            Assert.That(q.PckCertChainPem, Does.EndWith("-----END CERTIFICATE-----\n"));
        });
    }

    [Test]
    public void Gt3_v4_quote_with_zero_padding_reports_3065_trailing_bytes()
    {
        var q = TdxQuote.Parse(Vectors.Read(Gt3));
        Assert.Multiple(() =>
        {
            Assert.That(q.Version, Is.EqualTo(4));
            Assert.That(q.TrailingByteCount, Is.EqualTo(3065));
            Assert.That(q.QuoteEnd, Is.EqualTo(4935));
            Assert.That(Hex(q.Body.TeeTcbSvn), Is.EqualTo("04010700000000000000000000000000"));
            Assert.That(Hex(q.Body.MrTd), Is.EqualTo("dae67181d3d65e073ad8f95b7907d5e927bfe9761c9ff3e9b89734a45d8954dba41394c7717cb2735396c1d04231f94a"));
            Assert.That(Hex(q.Body.ReportData), Is.EqualTo(new string('0', 128)));
            Assert.That(Hex(q.QeAuthData), Is.EqualTo(new string('0', 64)));
            Assert.That(q.QeReport.IsvSvn, Is.EqualTo(6));
            Assert.That(Hex(q.AttestationKey), Is.EqualTo("2c089acb1647ec77c6f04ebd6b1aa21e4263d79ae224de06080177d2f67f60284552193eed14fcc44f4b78619fd24cd4da964dea285844c34dff837f152981a8"));
        });
    }

    [Test]
    public void Parsed_quote_keeps_its_own_copy_of_the_input()
    {
        var bytes = Vectors.Read(Gt1);
        var q = TdxQuote.Parse(bytes);
        var before = Hex(q.Body.MrTd);
        Array.Clear(bytes);
        Assert.That(Hex(q.Body.MrTd), Is.EqualTo(before));
    }
}
