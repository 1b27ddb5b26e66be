// Package translate turns a validated pipeline (package spec) into the
// files a deployment engine takes: today Docker Compose; Kubernetes and
// Nomad slot in as one more file each, on the same plan.
//
// Every translated service runs `flowctl node` on one component of the
// same pipeline file, so the translators share one model (plan.go): which
// services exist, what each one listens on and pushes to, which keeps
// state, and what the target cannot express (a warning with the field's
// file:line:col, never a silent drop). A target file (compose.go) only
// renders that plan in its engine's terms.
//
// It imports spec, flow (the registry, to ask a built-in whether it
// checkpoints) and tlsutil (certificates for inter-node TLS). It must not
// import the engine, the CLI or a component package: the registry is
// handed in.
package translate
