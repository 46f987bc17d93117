//! OCI images (layout, docker-archive, registry) turned into runtime bundles.
