# Multi-arch images for the five services, from deploy/Dockerfile (one target each).
#   VERSION=0.1.0 docker buildx bake -f deploy/docker-bake.hcl --push
#   docker buildx bake -f deploy/docker-bake.hcl gateway        # one service
# Run from the repository root (the build context).

variable "VERSION" {
  default = "0.1.0"
}

variable "REGISTRY" {
  default = "ghcr.io/tripmesh"
}

variable "PLATFORMS" {
  default = ["linux/arm64", "linux/amd64"]
}

group "default" {
  targets = ["services"]
}

target "services" {
  name       = svc
  matrix = {
    svc = ["gateway", "planner", "agent-runner", "cost-ledger", "vector-sync"]
  }
  context    = "."
  dockerfile = "deploy/Dockerfile"
  target     = svc
  platforms  = PLATFORMS
  tags       = ["${REGISTRY}/${svc}:${VERSION}", "${REGISTRY}/${svc}:latest"]
  labels = {
    "org.opencontainers.image.title"   = "tripmesh ${svc}"
    "org.opencontainers.image.version" = VERSION
  }
}
