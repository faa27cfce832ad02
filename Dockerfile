# syntax=docker/dockerfile:1
# Spawnpoint's images, built from this repository with the same set-up script as every other build:
#   docker build -t spawnpoint/spawnpoint:latest .                       the panel (server + web site)
#   docker build -t spawnpoint/demo-game:latest --target demo-game .     the catalog's demo game, for a cluster

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The wasm target, cargo-leptos, wasm-bindgen-cli and wasm-opt (scripts/setup.sh), then the release build.
RUN bash -c 'source scripts/setup.sh && setup_build_tools && cargo leptos build --release' \
 && cargo build --release --locked -p demo-game

FROM debian:bookworm-slim AS runtime-base
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin spawnpoint

FROM runtime-base AS demo-game
COPY --from=build /src/target/release/spawnpoint-demo-game /usr/local/bin/spawnpoint-demo-game
# On a cluster the game listens on the catalog's container port and keeps its world on the claim at /data.
ENV PORT=7000 DATA_DIR=/data
USER 10001:10001
EXPOSE 7000
ENTRYPOINT ["spawnpoint-demo-game"]

FROM runtime-base AS spawnpoint
COPY --from=build /src/target/release/spawnpoint /usr/local/bin/spawnpoint
COPY --from=build /src/target/site /usr/share/spawnpoint/site
ENV SPAWNPOINT_ADDR=0.0.0.0:3000 \
    SPAWNPOINT_SITE_ROOT=/usr/share/spawnpoint/site \
    SPAWNPOINT_DATA_DIR=/var/lib/spawnpoint
USER 10001:10001
EXPOSE 3000
ENTRYPOINT ["spawnpoint"]
