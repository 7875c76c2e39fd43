// The agent runs in Linux guests; its tests use FIFOs, statfs and Unix file modes.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
