package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sync"

	"github.com/flowctl/flowctl/internal/components"
	"github.com/flowctl/flowctl/internal/spec"
	controlv1 "github.com/flowctl/flowctl/pkg/wire/controlv1"
)

// namePattern is what a pipeline name may look like: it names a directory
// and a log file under the data directory.
var namePattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`) })

// validName reports whether name may name a pipeline.
func validName(name string) error {
	if !namePattern().MatchString(name) {
		return fmt.Errorf("pipeline name %q: use 1-63 characters of a-z, 0-9, '-', '_' and '.', starting with a letter or digit", name)
	}
	return nil
}

// escapeVars makes every `${` in text literal (`$${`): the stored spec was
// already substituted by the client, so neither the server's parse nor the
// child's may substitute again.
func escapeVars(text []byte) []byte {
	return bytes.ReplaceAll(text, []byte("${"), []byte("$${"))
}

// noEnv is a LookupEnv that knows no variable (the spec is escaped, so it
// is never asked).
func noEnv(string) (string, bool) { return "", false }

// parsed is a validated stored spec.
type parsed struct {
	pl    *spec.Pipeline
	diags spec.Diagnostics
	// canon is the canonical JSON of pl; hash is contentHash(canon, "").
	canon []byte
	hash  string
	// comps maps a component name to its canonical JSON fields.
	comps map[string]map[string]json.RawMessage
	// order is the component names in file order (dead letter last).
	order []string
	roles map[string]string
}

// parseSpec parses and validates an applied file's content. With errors,
// p.pl may be nil and the hash is empty.
func parseSpec(file string, text []byte) *parsed {
	if file == "" {
		file = "<apply>"
	}
	pl, diags := spec.Parse(file, escapeVars(text), spec.Options{Registry: components.NewRegistry(), LookupEnv: noEnv})
	p := &parsed{pl: pl, diags: diags}
	if diags.HasErrors() || pl == nil {
		return p
	}
	canon, err := canonical(pl)
	if err != nil {
		// Not expected: a parsed pipeline is plain data.
		p.diags = append(p.diags, spec.Diagnostic{File: file, Line: 1, Col: 1, Severity: spec.SevError,
			Message: fmt.Sprintf("cannot normalise the pipeline: %v", err)})
		return p
	}
	p.canon = canon
	p.hash = contentHash(canon, "")
	p.comps = map[string]map[string]json.RawMessage{}
	p.roles = map[string]string{}
	add := func(c *spec.Component, role string) {
		fields := map[string]json.RawMessage{}
		b, _ := canonical(c)
		_ = json.Unmarshal(b, &fields)
		p.comps[c.Name] = fields
		p.roles[c.Name] = role
		p.order = append(p.order, c.Name)
	}
	for _, c := range pl.Components() {
		add(c, string(c.Role))
	}
	if pl.DeadLetter != nil {
		add(pl.DeadLetter, "dead_letter")
	}
	return p
}

// contentHash is "sha256:<hex>" of a pipeline's canonical JSON and, when
// set, the directory its relative paths resolve against (the same file
// applied from another directory reads other files).
func contentHash(canon []byte, dir string) string {
	h := sha256.New()
	h.Write(canon)
	if dir != "" {
		h.Write([]byte("\x00dir="))
		h.Write([]byte(dir))
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// HashSpec is the content hash of a stored spec without a directory (for
// the store's migration of records that had none).
func HashSpec(spec []byte) (string, error) {
	p := parseSpec("", spec)
	if p.hash == "" {
		return "", p.diags.Err()
	}
	return p.hash, nil
}

// canonical is v as JSON without positions or the file name (they change
// with formatting, not meaning), with object keys sorted.
func canonical(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var tree any
	if err := json.Unmarshal(b, &tree); err != nil {
		return nil, err
	}
	return json.Marshal(strip(tree))
}

// strip drops position and file fields everywhere in a decoded JSON tree.
func strip(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for _, k := range []string{"Pos", "Positions", "File"} {
			delete(t, k)
		}
		for k, x := range t {
			t[k] = strip(x)
		}
	case []any:
		for i, x := range t {
			t[i] = strip(x)
		}
	}
	return v
}

// plan compares the new spec with the stored one (old may be nil) per
// component.
func plan(next, old *parsed) []*controlv1.PlanItem {
	var items []*controlv1.PlanItem
	for _, name := range next.order {
		it := &controlv1.PlanItem{Component: name, Role: next.roles[name]}
		prev, ok := (map[string]map[string]json.RawMessage)(nil), false
		if old != nil {
			prev, ok = old.comps, old.comps[name] != nil
		}
		switch {
		case !ok:
			it.Action = controlv1.PlanAction_PLAN_ACTION_START
		default:
			it.Fields = diffFields(next.comps[name], prev[name])
			if len(it.Fields) == 0 {
				it.Action = controlv1.PlanAction_PLAN_ACTION_UNCHANGED
			} else {
				it.Action = controlv1.PlanAction_PLAN_ACTION_CHANGE
			}
		}
		items = append(items, it)
	}
	if old != nil {
		for _, name := range old.order {
			if _, ok := next.comps[name]; !ok {
				items = append(items, &controlv1.PlanItem{Component: name, Role: old.roles[name], Action: controlv1.PlanAction_PLAN_ACTION_STOP})
			}
		}
	}
	return items
}

// fieldNames maps the Go field names of spec.Component to the file's keys,
// for PlanItem.fields.
var fieldNames = map[string]string{
	"Name": "name", "Role": "role", "Runner": "runner", "Type": "type", "Image": "image",
	"Command": "command", "Args": "args", "Inputs": "inputs", "InputEventTypes": "input_event_types",
	"OutputEventTypes": "output_event_types", "Config": "config", "Env": "env", "WorkingDir": "working_dir",
	"Buffer": "buffer", "Parallelism": "parallelism", "Ordered": "ordered", "OnError": "on_error",
	"Protocol": "protocol", "URL": "url", "StartupTimeout": "startup_timeout", "StopGrace": "stop_grace",
	"RestartPolicy": "restart_policy", "Ports": "ports", "Volumes": "volumes", "Secrets": "secrets",
	"Resources": "resources", "Replicas": "replicas", "HealthCheck": "health_check",
	"HealthPort": "health_port", "DependsOn": "depends_on",
}

// diffFields lists the file keys whose canonical values differ, sorted.
func diffFields(a, b map[string]json.RawMessage) []string {
	var out []string
	seen := map[string]bool{}
	for k := range a {
		seen[k] = true
	}
	for k := range b {
		seen[k] = true
	}
	for k := range seen {
		if !bytes.Equal(a[k], b[k]) {
			n := fieldNames[k]
			if n == "" {
				n = k
			}
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// diagsToProto converts diagnostics for the API.
func diagsToProto(ds spec.Diagnostics) []*controlv1.Diagnostic {
	out := make([]*controlv1.Diagnostic, 0, len(ds))
	for _, d := range ds {
		out = append(out, &controlv1.Diagnostic{File: d.File, Line: int32(d.Line), Column: int32(d.Col),
			Severity: string(d.Severity), Message: d.Message, Hint: d.Hint})
	}
	return out
}
