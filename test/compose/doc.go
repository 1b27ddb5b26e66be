// Package compose runs translated pipelines under the real docker-compose:
// it builds flowctl without cgo into the FROM-scratch image that
// `flowctl translate --dockerfile` describes, starts the translated
// Compose file, and checks the sink files against `flowctl run` on the
// same input — and that killing a node's container mid-run loses nothing.
// Every test skips, with the reason, when `docker info` or
// `docker-compose version` fails.
package compose
