# The pod-side image: `attestbroker-node agent fetch-key` and `attestbroker-node node fetch-model` (init container or
# DaemonSet). attestbroker-node is compiled ahead of time into one native executable (docs/node-helper.md): no .NET
# runtime, no JIT, 0.02 s to start and about 22 MiB to decrypt a model.
# Multi-stage; final image chiseled runtime-deps (glibc, OpenSSL, CA certificates), non-root (uid 1654), no shell, no SDK.
# Build from the repository root:  docker build -f deploy/docker/node.Dockerfile -t attestbroker/attestbroker-node:dev .
# (Not built in this repository's CI: the build machine has no container engine. See docs/deploy.md.)
# The -aot SDK image carries the native toolchain (clang) and the same Ubuntu release as the base below, so the
# executable links against the glibc it runs with.
FROM mcr.microsoft.com/dotnet/sdk:10.0-noble-aot AS build
WORKDIR /src
COPY . .
# x86-64 only: TDX and SEV-SNP guests are x86-64 (the project compiles for x86-64-v3).
RUN dotnet publish src/AttestBroker.Node -c Release -r linux-x64 -o /out/attestbroker-node

FROM mcr.microsoft.com/dotnet/runtime-deps:10.0-noble-chiseled AS runtime
COPY --from=build /out/attestbroker-node/attestbroker-node /app/attestbroker-node
ENV PATH=/app:/usr/bin:/bin \
    DOTNET_gcServer=0 \
    DOTNET_EnableDiagnostics=0
USER 1654:1654
ENTRYPOINT ["attestbroker-node"]
