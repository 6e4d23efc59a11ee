# syntax=docker/dockerfile:1
# Every Mikrom service's image, built from the repository root with the service as the build argument
# SERVICE and a target: `service` for vm-service, ippool-service and audit; `api-gateway` and
# `provisioner` are `service` plus what only they need (the API port; qemu and the guest it boots).
#   docker build --build-arg SERVICE=vm-service --target service -t mikrom/vm-service .
#   docker build --build-arg SERVICE=api-gateway --target api-gateway -t mikrom/api-gateway .
#   docker build --build-arg SERVICE=provisioner --target provisioner -t mikrom/provisioner .
# Node 24 runs the TypeScript sources directly (type stripping): no build step, no dev dependencies.
# docker-compose.yml builds every image this way; deploy/test/dockerfiles.test.ts checks what each gets.

FROM node:24-slim AS deps
ARG SERVICE
WORKDIR /app
# Every workspace's manifest, so that npm ci sees the lockfile's workspaces as they are.
COPY package.json package-lock.json ./
COPY libs/bus/package.json libs/bus/
COPY libs/contracts/package.json libs/contracts/
COPY libs/eventstore/package.json libs/eventstore/
COPY libs/infra/package.json libs/infra/
COPY libs/runtime/package.json libs/runtime/
COPY libs/telemetry/package.json libs/telemetry/
COPY libs/testkit/package.json libs/testkit/
COPY services/api-gateway/package.json services/api-gateway/
COPY services/audit/package.json services/audit/
COPY services/ippool-service/package.json services/ippool-service/
COPY services/provisioner/package.json services/provisioner/
COPY services/vm-service/package.json services/vm-service/
COPY deploy/package.json deploy/
RUN test -f "services/${SERVICE}/package.json" \
 || { echo "SERVICE='${SERVICE}' names no folder of services/: build with --build-arg SERVICE=<name>" >&2; exit 1; }
RUN --mount=type=cache,target=/root/.npm \
    npm ci --omit=dev --ignore-scripts --no-audit --no-fund -w @mikrom/${SERVICE}

# The qemu driver's guest (kernel + busybox initramfs from Debian packages), built once at image build;
# only the provisioner target uses it, so only its build runs this stage.
FROM node:24-slim AS guest
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends busybox-static lz4 ca-certificates
COPY services/provisioner/guest/ /src/guest/
RUN MIKROM_GUEST_DIR=/opt/mikrom/guest bash /src/guest/build.sh

FROM node:24-slim AS service
ARG SERVICE
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY libs/ ./libs/
COPY services/${SERVICE}/package.json ./services/${SERVICE}/
COPY services/${SERVICE}/src ./services/${SERVICE}/src
COPY deploy/docker/probe.ts ./probe.ts
# For the command below: Docker expands no variable in CMD, so its shell expands this one at start.
ENV MIKROM_SERVICE=${SERVICE}
# scripts/system.ts's PROCESS_ENV (why: there).
ENV MALLOC_ARENA_MAX=2
USER node
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "probe.ts", "HEALTH_PORT", "/health/ready"]
# exec: node replaces the shell, so it is the process that gets SIGTERM. The node flags are
# scripts/system.ts's NODE_FLAGS (why: there), the same for npm start and every deployment.
CMD ["sh", "-c", "exec node --max-semi-space-size=8 \"services/${MIKROM_SERVICE}/src/main.ts\""]

# The REST API on port 8080: healthy when GET /health answers there (it serves no HEALTH_PORT).
FROM service AS api-gateway
ARG SERVICE
RUN test "${SERVICE}" = api-gateway \
 || { echo "the api-gateway target is for SERVICE=api-gateway, not '${SERVICE}'" >&2; exit 1; }
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "probe.ts", "PORT", "/health"]

# The host agent: boots microVMs with qemu (KVM when /dev/kvm is usable) from the guest built above.
FROM service AS provisioner
ARG SERVICE
RUN test "${SERVICE}" = provisioner \
 || { echo "the provisioner target is for SERVICE=provisioner, not '${SERVICE}'" >&2; exit 1; }
USER root
# qemu without its ~180 recommended desktop packages; iproute2 for taps and bridges, nftables
# for the guests' fence on them.
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      qemu-system-x86 busybox-static lz4 iproute2 nftables \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /run/mikrom && chown node:node /run/mikrom
COPY services/provisioner/guest ./services/provisioner/guest
# The KVM probe's verdict is cached next to the guest: the agent's user must be able to write there.
COPY --from=guest --chown=node:node /opt/mikrom/guest /opt/mikrom/guest
ENV MIKROM_GUEST_DIR=/opt/mikrom/guest MIKROM_RUN_DIR=/run/mikrom
# Non-root by default (the fake driver, or qemu where /dev/kvm is group-accessible); compose and the
# DaemonSet run it as root with NET_ADMIN to create taps on a bridge.
USER node
# Its first start may probe KVM with a boot: longer to become ready than the others.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "probe.ts", "HEALTH_PORT", "/health/ready"]

# Without --target: the common image.
FROM service
