using System.Diagnostics;
using AttestBroker.Benchmarks;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;

// Verification throughput on one core, beside this machine's ECDSA rates measured in the same run.
//   dotnet run -c Release --project tests/AttestBroker.Benchmarks [-- --quick]
var quick = args.Contains("--quick");
if (OperatingSystem.IsLinux() || OperatingSystem.IsWindows())
{
    Process.GetCurrentProcess().ProcessorAffinity = 1; // one core
}

var job = (quick ? Job.ShortRun : Job.Default)
    .WithToolchain(InProcessEmitToolchain.Instance)
    .WithId(quick ? "quick, 1 core" : "1 core");
var config = DefaultConfig.Instance.AddJob(job).WithOptions(ConfigOptions.DisableOptimizationsValidator);
var summary = BenchmarkRunner.Run<VerificationBenchmarks>(config, args.Where(a => a != "--quick").ToArray());

double PerSecond(string description)
{
    var report = summary.Reports.FirstOrDefault(r => r.BenchmarkCase.Descriptor.WorkloadMethodDisplayInfo.Trim('\'') == description);
    return report?.ResultStatistics is { } s ? 1e9 / s.Mean : double.NaN;
}

var p256 = PerSecond("ECDSA P-256 verify");
var p384 = PerSecond("ECDSA P-384 verify");
var tdx = PerSecond("TDX quote v5 verify");
var snp = PerSecond("SNP report verify");
var tdxRatio = tdx / (p256 / 2);
var snpRatio = snp / p384;
Console.WriteLine();
Console.WriteLine("| measure | per second (1 core) |");
Console.WriteLine("|---|---|");
Console.WriteLine($"| ECDSA P-256 verify | {p256:F0} |");
Console.WriteLine($"| ECDSA P-384 verify | {p384:F0} |");
Console.WriteLine($"| TDX quote v5 verify (collateral cached) | {tdx:F0} |");
Console.WriteLine($"| SNP report verify (certificates cached) | {snp:F0} |");
Console.WriteLine();
Console.WriteLine($"TDX: {tdxRatio:P0} of (P-256 rate / 2); target >= 70%: {(tdxRatio >= 0.70 ? "met" : "NOT met")}");
Console.WriteLine($"SNP: {snpRatio:P0} of P-384 rate; target >= 80%: {(snpRatio >= 0.80 ? "met" : "NOT met")}");
return tdxRatio >= 0.70 && snpRatio >= 0.80 ? 0 : 1;
