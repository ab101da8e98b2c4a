"""The labels imagewright writes on every image it builds (templates/_partials/macros.j2) and that
scan and compare read back to know what an image is."""

SERVICE_LABEL = "io.imagewright.service"
VARIANT_LABEL = "io.imagewright.variant"
FLAVOR_LABEL = "io.imagewright.flavor"
BASE_NAME_LABEL = "org.opencontainers.image.base.name"
