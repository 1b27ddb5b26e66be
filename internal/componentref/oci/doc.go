// Package oci pulls component images from an OCI registry (Docker Hub,
// ghcr.io, any registry speaking the distribution protocol) with
// go-containerregistry, and extracts the component binary and its
// metadata.json from the image's layers. It implements
// componentref.Puller; the cache, not this package, decides where the
// files end up.
//
// It imports componentref and go-containerregistry only.
package oci
