namespace AttestBroker.HardwareSim;

/// <summary>The simulator's one error type: bad input (a profile, a PKI directory, an option). Never carries key material.</summary>
public sealed class SimulatorException : Exception
{
    public SimulatorException()
    {
    }

    public SimulatorException(string message)
        : base(message)
    {
    }

    public SimulatorException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
