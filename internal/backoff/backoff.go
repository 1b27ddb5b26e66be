// Package backoff is pkg/backoff under its former import path, so that
// packages not yet converted keep building (internal/external's supervisor
// among them). It adds nothing; new code imports pkg/backoff.
package backoff

import "github.com/flowctl/flowctl/pkg/backoff"

// DefaultJitter is backoff.DefaultJitter.
const DefaultJitter = backoff.DefaultJitter

// Policy is backoff.Policy.
type Policy = backoff.Policy

// Backoff is backoff.Backoff.
type Backoff = backoff.Backoff

// New is backoff.New.
func New(p Policy) *Backoff { return backoff.New(p) }
