// Package examples holds flowctl's example pipeline files (the YAML next to
// this file) and the test that keeps every one of them valid against the
// real built-ins. It has no code of its own.
package examples
