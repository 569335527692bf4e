# syntax=docker/dockerfile:1
#
# flare-node container image: a static binary on a distroless base, running
# as the non-root user 65532, data in the volume /data (the base path).
#
#   docker build --build-arg VERSION=0.1.0 --build-arg COMMIT=$(git rev-parse HEAD) -t flare-node .
#   docker run -d --name alice -v flare-alice:/data -p 30333:30333 --stop-timeout 120 \
#     flare-node --chain local --alice --enable-asf --metrics-addr 0.0.0.0:9615
#   docker stop alice      # SIGTERM: flushes and closes the databases, exit 0
#
# A validator key: mount it read-only and pass --key-file, e.g.
#   -v /etc/flare-node/validator.key:/keys/validator.key:ro --key-file /keys/validator.key
# (the file must be readable by uid 65532). The build does not see .git
# (.dockerignore), so the commit comes from the COMMIT build argument.

ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=0.1.0-dev
ARG COMMIT=unknown
# The same command TestDockerfile runs (FLARE_LONG_TESTS=1).
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags "-s -w -X github.com/flarechain/flare-node/internal/buildinfo.version=${VERSION} -X github.com/flarechain/flare-node/internal/buildinfo.commit=${COMMIT}" -o /out/flare-node ./cmd/flare-node
RUN mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/flare-node /usr/local/bin/flare-node
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV FLARE_BASE_PATH=/data
VOLUME ["/data"]
# libp2p (TCP) and the metrics/API listener (--metrics-addr 0.0.0.0:9615).
EXPOSE 30333/tcp 9615/tcp
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/flare-node"]
CMD ["--help"]
