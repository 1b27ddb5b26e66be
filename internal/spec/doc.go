// Package spec reads a pipeline file (YAML or JSON; flat, the flowctl/v1
// envelope, or the earlier flowctl's legacy shape) into a validated
// Pipeline, reporting every mistake at once as file:line:col diagnostics.
// It is handed the component registry and never imports the components; it
// imports only package flow, and componentref to check the syntax of
// component references (never to resolve them).
package spec
