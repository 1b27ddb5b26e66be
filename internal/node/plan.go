package node

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/flowctl/flowctl/internal/external"
	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
)

// DefaultPort is the port a node listens on and dials its peers at when
// no address says otherwise.
const DefaultPort = 7000

// DefaultListen is --listen's default.
var DefaultListen = net.JoinHostPort("0.0.0.0", strconv.Itoa(DefaultPort))

// inboundName names the source that stands for every upstream node in the
// node's own pipeline. '@' cannot start a component name in a file, so it
// never clashes with one.
const inboundName = "@upstream"

// Peer is where the node(s) of a downstream component listen: one address
// (a DNS name may stand for several replicas), or a list of addresses.
type Peer struct {
	Addrs []string
}

// ParsePeer reads one --peer value: NAME=HOST:PORT[,HOST:PORT...]. A
// missing port means DefaultPort.
func ParsePeer(v string) (string, Peer, error) {
	name, addrs, ok := strings.Cut(v, "=")
	name = strings.TrimSpace(name)
	if !ok || name == "" || strings.TrimSpace(addrs) == "" {
		return "", Peer{}, fmt.Errorf("--peer %q: give NAME=HOST:PORT (the downstream component's name and its node's address)", v)
	}
	var p Peer
	for _, a := range strings.Split(addrs, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			a = net.JoinHostPort(strings.Trim(a, "[]"), strconv.Itoa(DefaultPort))
		}
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" || port == "" {
			return "", Peer{}, fmt.Errorf("--peer %q: %q is not HOST:PORT", v, a)
		}
		if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
			return "", Peer{}, fmt.Errorf("--peer %q: port %q is not a number from 1 to 65535", v, port)
		}
		p.Addrs = append(p.Addrs, a)
	}
	return name, p, nil
}

// downstream is one component this node sends to.
type downstream struct {
	name     string
	replicas int
	peer     Peer
}

// plan is what a node runs: its own pipeline (the component, an inbound
// source standing for its upstreams, a remote sink per downstream) and who
// it waits for and sends to.
type plan struct {
	self     *spec.Component
	pipeline *spec.Pipeline
	// expected maps each upstream component to the number of its nodes
	// (replicas) that must send End before this node finishes; empty for
	// a source.
	expected    map[string]int
	downstreams []downstream
}

func replicasOf(c *spec.Component) int { return max(1, c.Replicas) }

// derive builds the node's plan for component name of p. peers overrides
// the default address of a downstream component (NAME:7000).
func derive(p *spec.Pipeline, name string, peers map[string]Peer) (*plan, error) {
	orig := p.Component(name)
	if orig == nil {
		return nil, fmt.Errorf("--component %q: the pipeline has no component of that name; it has %s", name, strings.Join(names(p), ", "))
	}
	isDead := p.DeadLetter != nil && p.DeadLetter.Name == name
	self := *orig
	pl := &plan{self: &self, expected: map[string]int{}}
	dp := &spec.Pipeline{File: p.File, Name: p.Name, Namespace: p.Namespace, Labels: p.Labels, Annotations: p.Annotations}

	switch {
	case isDead:
		// Every other component's node sends its failed events here.
		for _, c := range p.Components() {
			pl.expected[c.Name] = replicasOf(c)
		}
	default:
		for _, in := range orig.Inputs {
			if up := p.Component(in.From); up != nil {
				pl.expected[in.From] = replicasOf(up)
			}
		}
	}
	if len(pl.expected) > 0 {
		dp.Sources = append(dp.Sources, &spec.Component{Name: inboundName, Role: flow.RoleSource, Runner: spec.RunRemote,
			Type: "node-inbound", Config: flow.Config{}})
		// Type routing happened on the sending side.
		self.Inputs = []spec.Input{{From: inboundName}}
	}
	if isDead {
		self.Role = flow.RoleSink
	}
	switch self.Role {
	case flow.RoleSource:
		dp.Sources = append(dp.Sources, &self)
	case flow.RoleProcessor:
		dp.Processors = append(dp.Processors, &self)
	default:
		dp.Sinks = append(dp.Sinks, &self)
	}

	used := map[string]bool{}
	for _, c := range p.Components() {
		for _, in := range c.Inputs {
			if in.From != name || used[c.Name] {
				continue
			}
			used[c.Name] = true
			dp.Sinks = append(dp.Sinks, remoteSink(c.Name, []spec.Input{{From: name, Types: in.Types, Pos: in.Pos}}))
			pl.downstreams = append(pl.downstreams, downstream{name: c.Name, replicas: replicasOf(c)})
		}
	}
	if p.DeadLetter != nil && !isDead {
		dp.DeadLetter = remoteSink(p.DeadLetter.Name, nil)
		pl.downstreams = append(pl.downstreams, downstream{name: p.DeadLetter.Name, replicas: replicasOf(p.DeadLetter)})
	}
	if own, ok := peers[name]; ok {
		if err := remoteSelf(&self, own); err != nil {
			return nil, err
		}
	}
	var unknown []string
	for n := range peers {
		if n == name {
			continue
		}
		found := false
		for _, d := range pl.downstreams {
			found = found || d.name == n
		}
		if !found {
			unknown = append(unknown, n)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		var ds []string
		for _, d := range pl.downstreams {
			ds = append(ds, d.name)
		}
		what := "none"
		if len(ds) > 0 {
			what = strings.Join(ds, ", ")
		}
		return nil, fmt.Errorf("--peer %s: not a downstream of %q (its downstreams: %s)", strings.Join(unknown, ", "), name, what)
	}
	for i := range pl.downstreams {
		d := &pl.downstreams[i]
		if pr, ok := peers[d.name]; ok {
			d.peer = pr
		} else {
			d.peer = Peer{Addrs: []string{net.JoinHostPort(d.name, strconv.Itoa(DefaultPort))}}
		}
	}
	if self.Role == flow.RoleSource && len(pl.downstreams) == 0 {
		return nil, fmt.Errorf("component %q: no component takes its output, so its node would send nowhere", name)
	}
	pl.pipeline = dp
	return pl, nil
}

// remoteSelf makes the node's own component one it reaches at the address
// --peer gives for its own name instead of starting it: an image run as a
// container (or service) of its own, next to the node. The component
// serves its protocol there without registering anywhere (the Go SDK does
// so without ENABLE_FLOWCTL=true): grpc (auto means grpc, as nothing
// registers to tell flowctl.v1 apart) or http.
func remoteSelf(c *spec.Component, p Peer) error {
	if !external.IsExternal(c) || c.Runner == spec.RunRemote {
		return fmt.Errorf("--peer %s: %q is not a component of this node to reach elsewhere (only an image or command component can be: a built-in runs inside the node, a url is reached at its url)", c.Name, c.Name)
	}
	if len(p.Addrs) != 1 {
		return fmt.Errorf("--peer %s=%s: the node's own component is reached at one address, not %d", c.Name, strings.Join(p.Addrs, ","), len(p.Addrs))
	}
	addr := p.Addrs[0]
	switch c.Protocol {
	case "", external.ProtocolAuto, external.ProtocolGRPC:
		c.Protocol, c.URL = external.ProtocolGRPC, external.GRPCScheme+addr
	case "http":
		c.URL = "http://" + addr + "/"
	default:
		return fmt.Errorf("--peer %s: component %q speaks %s, which a node cannot reach at an address: serve grpc (flowctl.stream.v1) or http from it", c.Name, c.Name, c.Protocol)
	}
	c.Runner, c.Image, c.Command, c.Args = spec.RunRemote, "", nil, nil
	return nil
}

// remoteSink is the stand-in for a downstream component: the engine
// writes to it, the node sends over gRPC. It retries for ever (the sender
// itself does, until the run stops).
func remoteSink(name string, inputs []spec.Input) *spec.Component {
	return &spec.Component{Name: name, Role: flow.RoleSink, Runner: spec.RunRemote, Type: "node-peer",
		Inputs: inputs, Config: flow.Config{}, Buffer: 256,
		OnError: spec.OnError{Policy: spec.OnErrorRetry, Backoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second, Then: spec.OnErrorStop}}
}

func names(p *spec.Pipeline) []string {
	var out []string
	for _, c := range p.Components() {
		out = append(out, c.Name)
	}
	if p.DeadLetter != nil {
		out = append(out, p.DeadLetter.Name+" (dead_letter)")
	}
	return out
}
