# syntax=docker/dockerfile:1
# HcService images: `api` (the REST API) and `worker` (`hc worker`: trains runs in child processes).
#
#   docker build --target api -t hcservice-api .
#   docker build --target worker -t hcservice-worker .                            # CUDA (TorchSharp-cuda-linux)
#   docker build --target worker --build-arg TORCH_BACKEND=cpu -t hcservice-worker-cpu .
#
# -noble images: TorchSharp 0.107's libLibTorchSharp.so needs GLIBCXX_3.4.32, which Ubuntu 24.04's libstdc++ has
# (docs/design.md, platform notes). The CUDA worker restores TorchSharp-cuda-linux from nuget.org; it bundles libtorch's CUDA
# libraries, so the runtime image needs only the host's NVIDIA driver (NVIDIA Container Toolkit) and is several GB.

ARG DOTNET_VERSION=10.0

# ---- restore + publish ------------------------------------------------------------------------------------------
FROM mcr.microsoft.com/dotnet/sdk:${DOTNET_VERSION}-noble AS build
WORKDIR /src
# Restore inputs first, so that source edits do not invalidate the (large) package restore layer.
COPY global.json Directory.Build.props Directory.Packages.props ./
COPY src/HcService.Contract/HcService.Contract.csproj src/HcService.Contract/
COPY src/HcService.Core/HcService.Core.csproj src/HcService.Core/
COPY src/HcService.Store/HcService.Store.csproj src/HcService.Store/
COPY src/HcService.Plots/HcService.Plots.csproj src/HcService.Plots/
COPY src/HcService.Api/HcService.Api.csproj src/HcService.Api/
COPY src/HcService.Cli/HcService.Cli.csproj src/HcService.Cli/

FROM build AS publish-api
# The API never trains: it references the torch-free contract only (no libtorch in this image).
RUN --mount=type=cache,id=nuget,target=/root/.nuget/packages \
    dotnet restore src/HcService.Api/HcService.Api.csproj -r linux-x64
COPY src/ src/
RUN --mount=type=cache,id=nuget,target=/root/.nuget/packages \
    dotnet publish src/HcService.Api/HcService.Api.csproj -c Release -r linux-x64 --self-contained false --no-restore -o /out

FROM build AS publish-worker
# cuda: TorchSharp-cuda-linux (Directory.Build.props' TorchBackend switch, HcService.Core.csproj); cpu: TorchSharp-cpu.
ARG TORCH_BACKEND=cuda
# gcc: the build compiles the fused CPU connection kernels (src/HcService.Core/Native; AVX2 and baseline variants, picked
# when the library loads), which a CPU worker runs for HC in fp32. Without it the worker runs HC on tensor ops.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
RUN --mount=type=cache,id=nuget,target=/root/.nuget/packages \
    dotnet restore src/HcService.Cli/HcService.Cli.csproj -r linux-x64 -p:TorchBackend=${TORCH_BACKEND}
COPY src/ src/
RUN --mount=type=cache,id=nuget,target=/root/.nuget/packages \
    dotnet publish src/HcService.Cli/HcService.Cli.csproj -c Release -r linux-x64 --self-contained false --no-restore \
      -p:TorchBackend=${TORCH_BACKEND} -o /out

# ---- runtime base -----------------------------------------------------------------------------------------------
FROM mcr.microsoft.com/dotnet/aspnet:${DOTNET_VERSION}-noble AS runtime
# curl for the HEALTHCHECKs (the .NET images ship without it); a font for the server-drawn plots (ScottPlot measures text
# with the fonts under /usr/share/fonts).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends curl fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# The shipped tokenised datasets, owned by the non-root user: the data root is a volume shared by the API (which writes
# uploaded datasets, POST /api/datasets) and the workers; a new named volume starts with these files and this owner.
# Mount another folder on /app/data/datasets (or set HC_DATA_ROOT) for your own.
COPY data/datasets/ /app/data/datasets/
# The checkpoint store, shared by the API (downloads) and the workers (writes): a volume owned by the non-root user
# ($APP_UID, `app`, 1654 in the .NET images), so that a new named volume takes that ownership.
RUN mkdir -p /var/lib/hc/checkpoints && chown -R "$APP_UID" /var/lib/hc /app/data/datasets
VOLUME /var/lib/hc/checkpoints /app/data/datasets
ENV HC_DATA_ROOT=/app/data/datasets \
    HC_CHECKPOINT_ROOT=/var/lib/hc/checkpoints

# ---- api --------------------------------------------------------------------------------------------------------
FROM runtime AS api
COPY --from=publish-api /out/ /app/
ENV ASPNETCORE_HTTP_PORTS=8080 \
    OTEL_SERVICE_NAME=hc-api
EXPOSE 8080
USER $APP_UID
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD curl -fsS -o /dev/null http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["dotnet", "/app/HcService.Api.dll"]

# ---- worker -----------------------------------------------------------------------------------------------------
FROM runtime AS worker
ARG TORCH_BACKEND=cuda
COPY --from=publish-worker /out/ /app/
# The worker serves the queue of its build's device kind. Its /metrics and /healthz listen on HC_WORKER_METRICS_PORT.
# No NVIDIA_VISIBLE_DEVICES here: the GPU reservation (compose `deploy.resources`, `docker run --gpus`) chooses the
# devices, and an image default of `all` would hand every GPU to a container started without one.
# No OTEL_SERVICE_NAME: the training children inherit this environment and report as hc-train, the worker as hc-worker.
ENV HC_WORKER_QUEUE=${TORCH_BACKEND} \
    HC_WORKER_METRICS_PORT=9464
EXPOSE 9464
USER $APP_UID
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD curl -fsS -o /dev/null "http://127.0.0.1:${HC_WORKER_METRICS_PORT}/healthz" || exit 1
# exec: dotnet replaces the shell and receives SIGTERM itself; the worker then stops its training child, and the run is
# requeued by lease expiry and resumes from its latest checkpoint on another worker (docs/design.md section 5.6).
# Extra arguments to `docker run IMAGE ...` are appended to `hc worker`.
ENTRYPOINT ["/bin/sh", "-c", "exec dotnet /app/hc.dll worker --queue \"$HC_WORKER_QUEUE\" \"$@\"", "hc-worker"]
