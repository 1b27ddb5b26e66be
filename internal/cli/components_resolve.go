package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/flowctl/flowctl/internal/componentref"
	"github.com/flowctl/flowctl/internal/componentref/oci"
	"github.com/flowctl/flowctl/internal/spec"
)

// newResolver is the resolver of component references of this machine:
// FLOWCTL_COMPONENT_CACHE (or the user's cache directory) and
// FLOWCTL_COMPONENT_REGISTRY (or docker.io). notify gets one line per pull.
func newResolver(notify func(string)) (*componentref.Resolver, error) {
	cache, err := componentref.DefaultCache()
	if err != nil {
		return nil, err
	}
	return &componentref.Resolver{Cache: cache, Puller: oci.Puller{}, Registry: componentref.RegistryFromEnv(), Notify: notify}, nil
}

// resolveComponentRefs gives every component of pl written as `type:
// NAME@VERSION` (and not resolved yet) the command of its binary: from the
// cache, else pulled. It is done when a pipeline starts, never by
// validate. The facts of the binary's metadata.json that flowctl uses: the
// event types it emits (when the file declares none), the variables it
// reads config keys from (env_mapping, config_schema's env), and its role, which
// must match where the file lists it (a warning, since a mislabelled
// metadata.json should not stop a run). Every failure is one line, joined.
func resolveComponentRefs(ctx context.Context, pl *spec.Pipeline, out io.Writer, prefix string) error {
	var refs []*spec.Component
	for _, c := range append(pl.Components(), pl.DeadLetter) {
		if c != nil && c.Ref != "" && len(c.Command) == 0 {
			refs = append(refs, c)
		}
	}
	if len(refs) == 0 {
		return nil
	}
	notify := func(msg string) { fmt.Fprintf(out, "%s: %s\n", prefix, msg) }
	rs, err := newResolver(notify)
	if err != nil {
		return err
	}
	done := map[string]*componentref.Installed{}
	var errs []error
	for _, c := range refs {
		in, ok := done[c.Ref]
		if !ok {
			r, err := componentref.Parse(c.Ref)
			if err != nil { // spec checked it; a Pipeline built by hand may not be
				errs = append(errs, fmt.Errorf("%s %q: %w — %s", c.Role, c.Name, err, componentref.RefHint))
				continue
			}
			if in, err = rs.Resolve(ctx, r); err != nil {
				errs = append(errs, err)
				continue
			}
			done[c.Ref] = in
			if in.MetadataErr != nil {
				notify(fmt.Sprintf("warning: component %s: %v; its metadata is not used", c.Ref, in.MetadataErr))
			}
		}
		c.Command = []string{in.Binary}
		if m := in.Metadata; m != nil {
			if role := m.Role(); role != "" && role != string(c.Role) {
				notify(fmt.Sprintf("warning: %s %q: component %s says it is a %s (metadata.json type %q)", c.Role, c.Name, c.Ref, role, m.Type))
			}
			if len(c.OutputEventTypes) == 0 && len(m.Emits()) > 0 {
				c.OutputEventTypes = slices.Clone(m.Emits())
			}
			if ce := m.ConfigEnv(); len(ce) > 0 {
				c.ConfigEnv = ce
			}
		}
	}
	return errors.Join(errs...)
}

// refWarnings notes, for flowctl validate, the components given by
// reference that are not in the cache: a run will pull them (validate
// itself never touches the network). file is the name diagnostics carry.
func refWarnings(pl *spec.Pipeline, file string) spec.Diagnostics {
	if pl == nil {
		return nil
	}
	var rs *componentref.Resolver
	var out spec.Diagnostics
	for _, c := range append(pl.Components(), pl.DeadLetter) {
		if c == nil || c.Ref == "" {
			continue
		}
		r, err := componentref.Parse(c.Ref)
		if err != nil {
			continue // reported by spec
		}
		if rs == nil {
			if rs, err = newResolver(nil); err != nil {
				return nil
			}
		}
		at, ok := c.Positions["type"]
		if !ok {
			at = c.Pos
		}
		d := spec.Diagnostic{File: file, Line: at.Line, Col: at.Col, Severity: spec.SevWarning}
		_, err = rs.Cache.Lookup(r)
		var ce *componentref.CorruptError
		switch {
		case err == nil:
			continue
		case errors.Is(err, componentref.ErrNotInstalled):
			d.Message = fmt.Sprintf("%s %q: component %s is not installed; flowctl run will pull %s", c.Role, c.Name, c.Ref, r.Image(rs.Registry))
			d.Hint = fmt.Sprintf("run \"flowctl components pull %s\" now, or put the binary at %s", c.Ref, rs.Cache.BinaryPath(r))
		case errors.As(err, &ce):
			d.Message = fmt.Sprintf("%s %q: component %s: %v", c.Role, c.Name, c.Ref, ce)
			d.Hint = fmt.Sprintf("flowctl run will pull it again; or run \"flowctl components pull %s\"", c.Ref)
		default:
			d.Message = fmt.Sprintf("%s %q: component %s: %v", c.Role, c.Name, c.Ref, err)
		}
		out = append(out, d)
	}
	return out
}
