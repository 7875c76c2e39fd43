# The pod-side image: `attestbroker agent fetch-key` and `attestbroker node fetch-model` (init container or DaemonSet).
# Multi-stage; final image chiseled, non-root (uid 1654), no shell, no SDK.
# Build from the repository root:  docker build -f deploy/docker/node.Dockerfile -t attestbroker/attestbroker-node:dev .
# (Not built in this repository's CI: the build machine has no container engine. See docs/deploy.md.)
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY . .
# ReadyToRun (x86-64 only: TDX and SEV-SNP guests are x86-64): an init container's start-up does not wait for the
# JIT (measured on a 1-byte model decrypt: 0.20 -> 0.13 s).
RUN dotnet publish src/AttestBroker.Cli -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true -o /out/attestbroker

FROM mcr.microsoft.com/dotnet/aspnet:10.0-noble-chiseled AS runtime
COPY --from=build /out/attestbroker /app/attestbroker
ENV PATH=/app/attestbroker:/usr/bin:/bin \
    DOTNET_gcServer=0 \
    DOTNET_EnableDiagnostics=0
USER 1654:1654
ENTRYPOINT ["attestbroker"]
