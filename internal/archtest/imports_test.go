package archtest

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/flowctl/flowctl"

// rule forbids packages matching from to depend, directly or through
// others, on packages matching any of to. A pattern is a path relative to
// the module; "x/..." matches x and everything below it.
type rule struct {
	from string
	to   []string
	why  string
	// except are packages (patterns) under from that the rule skips.
	except []string
}

// everything below the module, for rules that allow no flowctl package.
var anyFlowctl = []string{"cmd/...", "internal/...", "pkg/..."}

// rules are DESIGN.md's one-way imports ("nothing imports downstream")
// and the packages' own doc comments, as tests.
var rules = []rule{
	{from: "pkg/...", to: []string{"internal/..."},
		why: "public packages (the SDK, the protocol) are imported by other modules; what they need from flowctl is public too"},
	{from: "internal/flow/...", to: anyFlowctl,
		why: "the domain types are the package everything imports; it imports nothing of flowctl"},
	{from: "internal/spec/...", to: []string{"internal/graph/...", "internal/engine/...", "internal/components/...", "internal/external/...",
		"internal/drivers/...", "internal/controlplane/...", "internal/server/...", "internal/cli/...", "internal/report/...", "internal/store/...", "internal/state/..."},
		why: "spec is handed the component registry and never imports the components or anything after it"},
	{from: "internal/graph/...", to: []string{"internal/engine/...", "internal/components/...", "internal/external/...", "internal/drivers/...",
		"internal/controlplane/...", "internal/server/...", "internal/cli/...", "internal/report/..."},
		why: "graph imports spec and flow only"},
	{from: "internal/engine/...", to: []string{"internal/components/...", "internal/external/...", "internal/drivers/...",
		"internal/controlplane/...", "internal/server/...", "internal/cli/...", "internal/report/...", "internal/store/..."},
		why: "the engine runs the components it is handed; it imports nothing downstream of it"},
	{from: "internal/components/...", to: []string{"internal/engine/...", "internal/external/...", "internal/drivers/...",
		"internal/controlplane/...", "internal/server/...", "internal/cli/...", "internal/report/..."},
		why: "built-in components implement the domain interfaces; they know nothing of what runs them"},
	{from: "internal/drivers/...", to: []string{"internal/flow/...", "internal/spec/...", "internal/graph/...", "internal/engine/...",
		"internal/components/...", "internal/external/...", "internal/controlplane/...", "internal/server/...", "internal/cli/...",
		"internal/report/...", "internal/store/..."},
		why: "drivers start tasks; they know nothing of pipelines or protocols"},
	{from: "internal/drivers/driverstest/testprog", to: anyFlowctl,
		why: "the conformance test program runs in a FROM-scratch image: standard library only"},
	{from: "internal/controlplane/...", to: []string{"internal/engine/...", "internal/components/...", "internal/external/...",
		"internal/drivers/...", "internal/server/...", "internal/cli/..."},
		why: "the control plane (registry, discovery) does not run pipelines"},
	{from: "internal/report/...", to: []string{"internal/engine/...", "internal/server/...", "internal/cli/...", "internal/store/..."},
		why: "report is shared by `flowctl run` and the server; engine stats are converted where the two meet (the CLI)"},
	{from: "internal/server/...", to: []string{"internal/engine/...", "internal/external/...", "internal/cli/..."},
		why: "the server supervises `flowctl run` children; it never links the engine that runs inside them"},
	{from: "internal/kube", to: anyFlowctl,
		why: "the small Kubernetes client is linked into flowctl: standard library and YAML only, no flowctl package"},
	{from: "internal/tap/...", to: []string{"internal/engine/...", "internal/components/...", "internal/external/...", "internal/drivers/...",
		"internal/controlplane/...", "internal/server/...", "internal/cli/...", "internal/store/..."},
		why: "the engine and the server both use tap: it imports the domain types and expressions only"},
	{from: "internal/ui/...", to: []string{"internal/engine/...", "internal/external/...", "internal/server/...", "internal/cli/...", "internal/store/..."},
		why: "the dashboard is served by `flowctl run` and the server alike: it gets their data through handlers and its Backend interface"},
	{from: "internal/deploy/...", to: []string{"internal/engine/...", "internal/server/...", "internal/cli/..."},
		why: "translators work from the validated Pipeline, not from a running one"},
	{from: "...", to: []string{"internal/cli/..."}, except: []string{"cmd/flowctl/...", "internal/cli/..."},
		why: "the CLI is the top: only cmd/flowctl imports it"},
	{from: "...", to: []string{"internal/server/..."}, except: []string{"cmd/flowctl/...", "internal/cli/...", "internal/server/..."},
		why: "nothing imports the server but the CLI"},
}

// match reports whether the module-relative path p matches pattern.
func match(pattern, p string) bool {
	if pattern == "..." {
		return true
	}
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return p == base || strings.HasPrefix(p, base+"/")
	}
	return p == pattern
}

func matchAny(patterns []string, p string) bool {
	return slices.ContainsFunc(patterns, func(pat string) bool { return match(pat, p) })
}

// violation is a forbidden arrow and the chain of imports that makes it.
type violation struct {
	rule  rule
	chain []string
}

func (v violation) String() string {
	return strings.Join(v.chain, " → ") + ": " + v.rule.why
}

// check returns every violation of rules in the import graph imports
// (module-relative path → its direct module-relative imports), with the
// shortest chain for each (package, rule).
func check(imports map[string][]string, rules []rule) []violation {
	var out []violation
	pkgs := make([]string, 0, len(imports))
	for p := range imports {
		pkgs = append(pkgs, p)
	}
	slices.Sort(pkgs)
	for _, r := range rules {
		for _, from := range pkgs {
			if !match(r.from, from) || matchAny(r.except, from) {
				continue
			}
			// Breadth first, so the chain reported is a shortest one.
			prev := map[string]string{from: ""}
			queue := []string{from}
			for len(queue) > 0 {
				cur := queue[0]
				queue = queue[1:]
				if cur != from && matchAny(r.to, cur) && !match(r.from, cur) {
					chain := []string{cur}
					for p := prev[cur]; p != ""; p = prev[p] {
						chain = append([]string{p}, chain...)
					}
					out = append(out, violation{rule: r, chain: chain})
					break
				}
				for _, next := range imports[cur] {
					if _, seen := prev[next]; !seen {
						prev[next] = cur
						queue = append(queue, next)
					}
				}
			}
		}
	}
	return out
}

// importGraph reads the module's import graph (without tests) from
// `go list -deps`.
func importGraph(t *testing.T) map[string][]string {
	t.Helper()
	goCmd := filepath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.Command(goCmd, "list", "-deps", "-f", "{{.ImportPath}}|{{join .Imports \",\"}}", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	rel := func(p string) (string, bool) {
		if p == module {
			return ".", true
		}
		r, ok := strings.CutPrefix(p, module+"/")
		return r, ok
	}
	g := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		path, imps, _ := strings.Cut(line, "|")
		p, ok := rel(path)
		if !ok {
			continue // the standard library and other modules
		}
		var deps []string
		for _, imp := range strings.Split(imps, ",") {
			if r, ok := rel(imp); ok {
				deps = append(deps, r)
			}
		}
		g[p] = deps
	}
	return g
}

// TestOneWayImports fails on every arrow DESIGN.md forbids, naming the
// chain of imports that makes it.
func TestOneWayImports(t *testing.T) {
	g := importGraph(t)
	for _, must := range []string{"internal/server", "internal/engine", "pkg/sdk", "internal/drivers/process"} {
		if _, ok := g[must]; !ok {
			t.Fatalf("go list did not list %s: the graph is not the module's", must)
		}
	}
	for _, v := range check(g, rules) {
		t.Errorf("forbidden import: %s", v)
	}
}

// TestCheck makes sure the checker finds arrows, direct and indirect, and
// respects exceptions, on a small made-up graph.
func TestCheck(t *testing.T) {
	g := map[string][]string{
		"pkg/sdk":          {"pkg/wire", "internal/tlsutil"},
		"pkg/wire":         nil,
		"internal/tlsutil": nil,
		"internal/server":  {"internal/report"},
		"internal/report":  {"internal/engine"},
		"internal/engine":  {"internal/graph"},
		"internal/graph":   nil,
		"internal/cli":     {"internal/server"},
		"cmd/flowctl":      {"internal/cli"},
		"internal/store":   nil,
	}
	cases := []struct {
		name  string
		rules []rule
		want  []string
	}{
		{"direct", []rule{{from: "pkg/...", to: []string{"internal/..."}}}, []string{"pkg/sdk → internal/tlsutil"}},
		{"through another package", []rule{{from: "internal/server/...", to: []string{"internal/engine/..."}}},
			[]string{"internal/server → internal/report → internal/engine"}},
		{"exceptions", []rule{{from: "...", to: []string{"internal/server/..."}, except: []string{"cmd/flowctl/...", "internal/cli/...", "internal/server/..."}}}, nil},
		{"clean", []rule{{from: "internal/graph/...", to: []string{"internal/engine/..."}}}, nil},
		{"exact pattern does not take subpackages", []rule{{from: "internal/cli", to: []string{"internal/report"}}},
			[]string{"internal/cli → internal/server → internal/report"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, v := range check(g, tc.rules) {
				got = append(got, strings.Join(v.chain, " → "))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("violations = %q, want %q", got, tc.want)
			}
		})
	}
}
