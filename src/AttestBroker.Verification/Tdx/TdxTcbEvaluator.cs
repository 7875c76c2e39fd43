namespace AttestBroker.Verification.Tdx;

/// <summary>Intel's TCB status names.</summary>
public static class TcbStatusNames
{
    public const string UpToDate = "UpToDate";
    public const string SwHardeningNeeded = "SWHardeningNeeded";
    public const string ConfigurationNeeded = "ConfigurationNeeded";
    public const string ConfigurationAndSwHardeningNeeded = "ConfigurationAndSWHardeningNeeded";
    public const string OutOfDate = "OutOfDate";
    public const string OutOfDateConfigurationNeeded = "OutOfDateConfigurationNeeded";
    public const string Revoked = "Revoked";
    public const string TdRelaunchAdvised = "TDRelaunchAdvised";
    public const string TdRelaunchAdvisedConfigurationNeeded = "TDRelaunchAdvisedConfigurationNeeded";
}

/// <summary>The result of TCB evaluation: a status with its advisories, or the reason no status could be had.</summary>
public sealed record TdxTcbEvaluation(string? Status, IReadOnlyList<string> AdvisoryIds, string? FailureCode, string? FailureMessage, TdxTcbLevel? Level)
{
    public bool Succeeded => FailureCode is null;

    internal static TdxTcbEvaluation Fail(string code, string message) => new(null, [], code, message, null);
}

/// <summary>
/// TDX TCB level evaluation following Intel's Quote Verification Library (TcbLevelCheck, TdxModuleCheck): pure
/// functions of the PCK extensions, the TD quote body and a TCB Info that was already verified.
/// </summary>
public static class TdxTcbEvaluator
{
    /// <summary>
    /// The TDX platform status: the first level (in TCB Info order, highest first) where all 16 SGX component SVNs
    /// and the PCESVN of the PCK certificate are at least the level's, and TEE_TCB_SVN is at least the level's
    /// tdxtcbcomponents. When TEE_TCB_SVN[1] (the module major version) is non-zero, bytes 0 and 1 are not compared
    /// here but judged by the module identity "TDX_%02X" instead, whose status then converges into the result.
    /// </summary>
    public static TdxTcbEvaluation EvaluatePlatform(TdxTcbInfo tcbInfo, PckCertificateExtensions pck, ReadOnlySpan<byte> teeTcbSvn, ReadOnlySpan<byte> mrSignerSeam, ReadOnlySpan<byte> seamAttributes)
    {
        ArgumentNullException.ThrowIfNull(tcbInfo);
        ArgumentNullException.ThrowIfNull(pck);
        if (teeTcbSvn.Length != 16)
        {
            throw new ArgumentException("TEE_TCB_SVN is 16 bytes", nameof(teeTcbSvn));
        }

        var major = teeTcbSvn[1];
        var minor = teeTcbSvn[0];

        // Module identity: with major 0 the single tdxModule entry, else TDX_%02X among tdxModuleIdentities.
        TdxModuleIdentity? module;
        if (major == 0)
        {
            module = tcbInfo.TdxModule;
            if (module is null)
            {
                return TdxTcbEvaluation.Fail(ReasonCodes.TdxModuleMismatch, "the TCB Info has no tdxModule entry");
            }
        }
        else
        {
            var id = $"TDX_{major:X2}";
            module = tcbInfo.TdxModuleIdentities.FirstOrDefault(m => string.Equals(m.Id, id, StringComparison.OrdinalIgnoreCase));
            if (module is null)
            {
                return TdxTcbEvaluation.Fail(ReasonCodes.TdxModuleMismatch, $"the TCB Info has no TDX module identity {id} (TEE_TCB_SVN[1] = {major})");
            }
        }

        if (!mrSignerSeam.SequenceEqual(module.MrSigner))
        {
            return TdxTcbEvaluation.Fail(ReasonCodes.TdxModuleMismatch, $"MRSIGNERSEAM {Convert.ToHexStringLower(mrSignerSeam)} is not the {module.Id} signer {Convert.ToHexStringLower(module.MrSigner)}");
        }

        for (var i = 0; i < 8; i++)
        {
            if ((seamAttributes[i] & module.AttributesMask[i]) != module.Attributes[i])
            {
                return TdxTcbEvaluation.Fail(ReasonCodes.TdxModuleMismatch, $"SEAMATTRIBUTES {Convert.ToHexStringLower(seamAttributes)} do not match {module.Id} attributes {Convert.ToHexStringLower(module.Attributes)} under mask {Convert.ToHexStringLower(module.AttributesMask)}");
            }
        }

        var start = major > 0 ? 2 : 0;
        TdxTcbLevel? match = null;
        foreach (var level in tcbInfo.TcbLevels)
        {
            var sgxOk = pck.PceSvn >= level.PceSvn;
            for (var i = 0; i < 16 && sgxOk; i++)
            {
                sgxOk = pck.SgxTcbComponents[i] >= level.SgxTcbComponents[i];
            }

            if (!sgxOk)
            {
                continue;
            }

            var tdxOk = true;
            for (var i = start; i < 16 && tdxOk; i++)
            {
                tdxOk = teeTcbSvn[i] >= level.TdxTcbComponents[i];
            }

            if (tdxOk)
            {
                match = level;
                break;
            }
        }

        if (match is null)
        {
            return TdxTcbEvaluation.Fail(
                ReasonCodes.TcbLevelNotSupported,
                $"no TCB level of FMSPC {tcbInfo.Fmspc} (evaluation data {tcbInfo.TcbEvaluationDataNumber}) is met by PCK SGX components [{string.Join(',', pck.SgxTcbComponents)}], PCESVN {pck.PceSvn} and TEE_TCB_SVN {Convert.ToHexStringLower(teeTcbSvn)}");
        }

        var status = match.TcbStatus;
        var advisories = new List<string>(match.AdvisoryIds);
        if (major > 0)
        {
            var moduleLevel = module.TcbLevels.FirstOrDefault(l => minor >= l.IsvSvn);
            if (moduleLevel is null)
            {
                return TdxTcbEvaluation.Fail(ReasonCodes.TcbLevelNotSupported, $"no TCB level of TDX module {module.Id} is met by its ISVSVN {minor}");
            }

            status = Converge(status, moduleLevel.TcbStatus);
            advisories.AddRange(moduleLevel.AdvisoryIds);
        }

        return new TdxTcbEvaluation(status, advisories.Distinct(StringComparer.Ordinal).ToList(), null, null, match);
    }

    /// <summary>QE TCB status: the first level (in order) whose ISVSVN is at most the QE's; null when none.</summary>
    public static IsvSvnTcbLevel? QeLevel(TdQeIdentity identity, int qeIsvSvn)
    {
        ArgumentNullException.ThrowIfNull(identity);
        return identity.TcbLevels.FirstOrDefault(l => l.IsvSvn <= qeIsvSvn);
    }

    /// <summary>
    /// Folds a component status (TDX module or QE) into the platform status the way QVL does: Revoked wins;
    /// OutOfDate turns UpToDate / SWHardeningNeeded into OutOfDate and the configuration statuses into
    /// OutOfDateConfigurationNeeded; any other component status leaves the platform status as it is.
    /// </summary>
    public static string Converge(string platform, string component)
    {
        if (component == TcbStatusNames.Revoked || platform == TcbStatusNames.Revoked)
        {
            return TcbStatusNames.Revoked;
        }

        if (component == TcbStatusNames.OutOfDate)
        {
            return platform switch
            {
                TcbStatusNames.UpToDate or TcbStatusNames.SwHardeningNeeded => TcbStatusNames.OutOfDate,
                TcbStatusNames.ConfigurationNeeded or TcbStatusNames.ConfigurationAndSwHardeningNeeded => TcbStatusNames.OutOfDateConfigurationNeeded,
                _ => platform,
            };
        }

        return platform;
    }

    /// <summary>
    /// TDX 1.5 "TD relaunch advised". <paramref name="launch"/> is the final status computed from TEE_TCB_SVN (the
    /// module the TD was launched on; QVL's choice and the conservative one), <paramref name="current"/> the same
    /// evaluation with TEE_TCB_SVN2 (the module after TD-preserving updates), both already converged with the QE
    /// status. Only an out-of-date launch status changes: when relaunching the TD would bring it up to date (or to a
    /// status that needs only configuration), the result says so; otherwise the launch status stands.
    /// </summary>
    public static string CheckForRelaunch(string launch, string? current)
    {
        var currentOk = current is TcbStatusNames.UpToDate or TcbStatusNames.SwHardeningNeeded;
        var currentNeedsConfig = current is TcbStatusNames.ConfigurationNeeded or TcbStatusNames.ConfigurationAndSwHardeningNeeded;
        return launch switch
        {
            TcbStatusNames.OutOfDate when currentOk => TcbStatusNames.TdRelaunchAdvised,
            TcbStatusNames.OutOfDate when currentNeedsConfig => TcbStatusNames.TdRelaunchAdvisedConfigurationNeeded,
            TcbStatusNames.OutOfDateConfigurationNeeded when currentOk || currentNeedsConfig => TcbStatusNames.TdRelaunchAdvisedConfigurationNeeded,
            _ => launch,
        };
    }
}
