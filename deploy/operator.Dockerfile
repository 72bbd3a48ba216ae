# Image of the KafScale operator, built from source on a machine that can pull base images:
# `docker build -f deploy/operator.Dockerfile .` from the repository root.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p kafscale-operator

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/kafscale-operator /usr/local/bin/kafscale-operator
USER 65532:65532
ENTRYPOINT ["kafscale-operator"]
CMD ["run"]
