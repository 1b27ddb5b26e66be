// Package componentref resolves component references — the `type:
// NAME@VERSION` of the earlier flowctl's pipeline files — to a binary on
// this machine.
//
// A reference is NAME@VERSION, ORG/NAME@VERSION (ORG defaults to
// withobsrvr) or a full OCI image reference HOST/ORG/NAME:VERSION (a
// @sha256: digest may pin it). It is looked up in the component cache
// (Cache); a miss is pulled from an OCI registry by a Puller (package
// componentref/oci), whose result the cache installs atomically and
// records with its digests, so a binary that changed on disk is noticed
// before it runs.
//
// It imports only the standard library: package spec parses references
// with it at validate time, which needs no network and no registry code.
package componentref
