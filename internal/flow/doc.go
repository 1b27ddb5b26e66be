// Package flow holds flowctl's domain types: events, the component
// interfaces (Source, Processor, Sink), config specs and the component
// registry. Every other package imports it; it imports no other flowctl
// package.
package flow
