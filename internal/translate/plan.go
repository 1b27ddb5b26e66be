package translate

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/url"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/flowctl/flowctl/internal/flow"
	flowctlnode "github.com/flowctl/flowctl/internal/node"
	"github.com/flowctl/flowctl/internal/spec"
)

// Where things are inside every node container. Targets share them, so a
// node looks the same whichever engine runs it.
const (
	// pipelineDir is where the pipeline file is mounted (read-only),
	// under its own name: a relative path in it resolves under this
	// directory, and when the pipeline's whole directory is mounted there
	// too (a file next to it), the file is already where it is mounted.
	pipelineDir = "/etc/flowctl"
	// flowctlBin is the binary in flowctl's image.
	flowctlBin = "/flowctl"
	// nodePort is the stream port a node listens on (flowctl node's
	// default --listen) and its peers push to.
	nodePort = 7000
	// httpPort serves /healthz, /readyz and /metrics of a node.
	httpPort = 9090
	// stateDir holds a checkpointing source's state (--state-dir).
	stateDir = "/var/lib/flowctl/state"
	// tlsMount holds a node's certificate, key and the CA.
	tlsMount = "/etc/flowctl/tls"
	// sidecarSuffix names the service running an image component's own
	// image next to the node that drives it.
	sidecarSuffix = "-component"
	// maxDNSLabel is the longest DNS label (RFC 1123).
	maxDNSLabel = 63
)

// plan is what every target renders: one node per component, with the
// names, edges and state the targets need, and the warnings about fields
// no target of flowctl node can carry.
type plan struct {
	p    *spec.Pipeline
	opts Options
	// nodes are in file order: sources, processors, sinks, dead letter.
	nodes []*node
	// byComponent finds a component's node.
	byComponent map[string]*node
	// after maps a service to the services it starts after (see
	// startOrder), sorted.
	after    map[string][]string
	warnings spec.Diagnostics
}

// node is one component run by `flowctl node` as a service.
type node struct {
	c *spec.Component
	// service is the component's name made a DNS label.
	service string
	// sidecar is the service running the component's own image, for an
	// image component; "" otherwise.
	sidecar string
	// componentPort is the port of the sidecar the node talks to.
	componentPort int
	// downstream are the nodes this one pushes to (its consumers and the
	// dead letter sink), sorted by service name.
	downstream []*node
	// checkpoints is true for a source that resumes from committed
	// positions, and for a sink that must know it ran before: its node
	// gets a durable state directory.
	checkpoints bool
	// dataDir is the directory of a built-in's relative file path (a
	// file source's input, a file sink's output), mounted from the host
	// where `flowctl run` would read or write it; nil when there is none.
	dataDir *dataDir
	// secretFiles and secretEnvs are where a built-in reads its secrets
	// (see secretfields.go), in the order of its fields.
	secretFiles []secretFile
	secretEnvs  []secretEnv
}

// dataDir is a host directory mounted where the pipeline file's relative
// paths point inside the container.
type dataDir struct {
	// rel is the directory relative to the pipeline file ("." for the
	// pipeline file's own directory).
	rel string
	// target is where it is mounted in the container.
	target   string
	readOnly bool
	// field is the config field that names the file (path, module).
	field string
}

func newPlan(p *spec.Pipeline, opts Options) (*plan, error) {
	pl := &plan{p: p, opts: opts, byComponent: map[string]*node{}}
	comps := p.Components()
	if p.DeadLetter != nil {
		comps = append(comps, p.DeadLetter)
	}
	taken := map[string]*spec.Component{}
	claim := func(name string, c *spec.Component) error {
		if other, ok := taken[name]; ok {
			return fmt.Errorf("%s: %s %q and %s %q (line %d) both become service %q: rename one (service names are DNS names: lower-case letters, digits and '-')",
				pl.posString(c.Pos), c.Role, c.Name, other.Role, other.Name, other.Pos.Line, name)
		}
		taken[name] = c
		return nil
	}
	for _, c := range comps {
		n := &node{c: c, service: dnsName(c.Name, maxDNSLabel)}
		if n.service != c.Name {
			pl.warn(c, "name", fmt.Sprintf("%s %q becomes service %q", c.Role, c.Name, n.service),
				"service names are DNS names (lower-case letters, digits and '-', at most 63); rename the component to keep its name")
		}
		if err := claim(n.service, c); err != nil {
			return nil, err
		}
		if c.Runner == spec.RunContainer {
			n.sidecar = dnsName(c.Name, maxDNSLabel-len(sidecarSuffix)) + sidecarSuffix
			if err := claim(n.sidecar, c); err != nil {
				return nil, err
			}
		}
		// A sink node keeps in its state that it ran, so that started
		// again it appends instead of erasing its output (node.AppendsOnRestart).
		n.checkpoints = (c.Role == flow.RoleSource && checkpoints(c, opts.Registry, p)) || flowctlnode.AppendsOnRestart(c, opts.Registry)
		pl.nodes = append(pl.nodes, n)
		pl.byComponent[c.Name] = n
	}
	for _, n := range pl.nodes {
		seen := map[*node]bool{}
		for _, in := range n.c.Inputs {
			up := pl.byComponent[in.From]
			if up != nil && !seen[up] {
				seen[up] = true
				up.downstream = append(up.downstream, n)
			}
		}
	}
	if dl := pl.deadLetter(); dl != nil {
		for _, n := range pl.nodes {
			if n != dl {
				n.downstream = append(n.downstream, dl)
			}
		}
	}
	for _, n := range pl.nodes {
		sort.Slice(n.downstream, func(i, j int) bool { return n.downstream[i].service < n.downstream[j].service })
		pl.checkNode(n)
	}
	pl.startOrder()
	for _, ref := range p.Pipelines {
		pl.warnAt(ref.Pos, fmt.Sprintf("pipeline %q of spec.pipelines is not translated", ref.Name),
			"it moves its data outside the event graph; deploy it next to the translated services yourself")
	}
	return pl, nil
}

// nodeArgs are the arguments of `flowctl node` for n. They are the same
// for every target but for two addresses: where the node reaches its
// image component (imageHost, at the component's port), and where it
// reaches each downstream node (peer; "" leaves flowctl node's default,
// the component's own name).
func (pl *plan) nodeArgs(n *node, imageHost string, peer func(d *node) string) []string {
	c := n.c
	args := []string{"node", "-f", pl.pipelinePath(), "--component", c.Name, "--http", fmt.Sprintf("0.0.0.0:%d", httpPort)}
	if pl.receives(n) {
		// Said even where it is flowctl node's default: the dead-letter
		// sink has no inputs in the file, yet receives.
		args = append(args, "--listen", fmt.Sprintf("0.0.0.0:%d", nodePort))
	}
	if n.sidecar != "" {
		args = append(args, "--peer", fmt.Sprintf("%s=%s:%d", c.Name, imageHost, n.componentPort))
	}
	for _, d := range n.downstream {
		if addr := peer(d); addr != "" {
			args = append(args, "--peer", d.c.Name+"="+addr)
		}
	}
	if pl.opts.TLS {
		args = append(args, "--tls-cert", tlsMount+"/node.crt", "--tls-key", tlsMount+"/node.key", "--tls-ca", tlsMount+"/ca.crt")
	} else {
		args = append(args, "--insecure")
	}
	if n.checkpoints {
		args = append(args, "--state-dir", stateDir)
	}
	return args
}

// servicePeer is the downstream address where a node's service name is
// not its component's name (flowctl node dials the component's name by
// default).
func servicePeer(d *node) string {
	if d.service != d.c.Name {
		return fmt.Sprintf("%s:%d", d.service, nodePort)
	}
	return ""
}

// receives reports whether other nodes push to n: it has inputs, or it is
// the dead-letter sink.
func (pl *plan) receives(n *node) bool {
	return len(n.c.Inputs) > 0 || n == pl.deadLetter()
}

// deadLetter is the dead letter sink's node, or nil.
func (pl *plan) deadLetter() *node {
	if pl.p.DeadLetter == nil {
		return nil
	}
	return pl.byComponent[pl.p.DeadLetter.Name]
}

// checkNode warns about what a node service cannot carry whatever the
// target: fields only a local run has a meaning for.
func (pl *plan) checkNode(n *node) {
	c := n.c
	if c.Runner == spec.RunContainer {
		n.componentPort = componentPort(pl, n)
	}
	switch c.Runner {
	case spec.RunContainer:
		// Where the node reaches the image is the target's (its own
		// warning says): another service, or a container next to it.
		switch c.Protocol {
		case "", "auto":
			pl.warn(c, "image", fmt.Sprintf("%s %q (protocol auto) is driven over flowctl.stream.v1 (grpc) on port %d: in its own container it registers nowhere, so an earlier flowctl.v1 component is not told apart", c.Role, c.Name, n.componentPort),
				"an image built with flowctl's Go SDK works as is (it serves on PORT); a flowctl.v1 image does not run under translated services yet")
		case "grpc", "http":
		case "stdio":
			pl.warn(c, "protocol", fmt.Sprintf("%s %q speaks stdio, which a node cannot reach in another container: its node will refuse to start", c.Role, c.Name),
				"serve grpc or http from the image (protocol: grpc), or build an image FROM flowctl's that holds the program and give it as `command:`")
		default:
			pl.warn(c, "protocol", fmt.Sprintf("%s %q speaks %s, which a node cannot drive in another container: its node will refuse to start", c.Role, c.Name, c.Protocol),
				"serve grpc (flowctl.stream.v1, e.g. with flowctl's Go SDK) or http from the image")
		}
	case spec.RunRemote:
		if u, err := url.Parse(c.URL); err == nil {
			if h := u.Hostname(); h == "localhost" || net.ParseIP(h).IsLoopback() {
				pl.warn(c, "url", fmt.Sprintf("%s %q is reached at %s: inside a container that is the container itself", c.Role, c.Name, c.URL),
					"give an address the containers can reach (a service name, or host.docker.internal where Docker provides it)")
			}
		}
	case spec.RunProcess:
		at := "command"
		what := fmt.Sprintf("command %q", strings.Join(c.Command, " "))
		if c.Ref != "" {
			at, what = "type", fmt.Sprintf("component reference %s", c.Ref)
		}
		pl.warn(c, at, fmt.Sprintf("%s %q runs %s inside flowctl's image, which is built FROM scratch and holds only flowctl", c.Role, c.Name, what),
			"give the component an `image:` that has the program (it then runs as a container of its own), or build your node image FROM flowctl's and add it")
	}
	if part, ok := optionalBuiltins[string(c.Role)+"."+c.Type]; ok && c.Runner == spec.RunBuiltin {
		pl.warn(c, "type", fmt.Sprintf("%s %q is in flowctl only when built with %s; flowctl's image %s runs its node, and the image `--dockerfile` describes holds a default binary without it: there the node refuses to start", c.Role, c.Name, part.build, pl.opts.Image),
			part.fix)
	}
	if field, ok := localFileFields[string(c.Role)+"."+c.Type]; ok && c.Runner == spec.RunBuiltin {
		if v, ok := c.Config[field].(string); ok && v != "" {
			pl.localFile(n, field, v)
		}
	}
	if field, ok := listenFields[string(c.Role)+"."+c.Type]; ok && c.Runner == spec.RunBuiltin {
		pl.listenAddress(n, field)
	}
	pl.secretFields(n)
	if c.Replicas > 1 && c.Role != flow.RoleProcessor {
		pl.warn(c, "replicas", fmt.Sprintf("%s %q has replicas: %d: each replica runs the whole %s", c.Role, c.Name, c.Replicas, c.Role),
			"replicas share the work of a processor only; a source with replicas reads its input once per replica, a sink writes it once per replica")
	}
}

// localFile decides how a built-in's file reaches its container. A
// relative path is resolved against the pipeline file's directory, as
// `flowctl run` does, so that directory of the host is mounted there: the
// input is read and the output written where a local run would. An
// absolute path must lie under one of the component's volumes; otherwise
// it is the container's own file system, and a warning says so.
func (pl *plan) localFile(n *node, field, p string) {
	c := n.c
	if strings.HasPrefix(p, "/") || filepath.IsAbs(p) {
		if !mounted(c, p) {
			pl.warn(c, "config."+field, fmt.Sprintf("%s %q uses %s, which is in no volume of the component: it is read from (or written to) the container's own file system", c.Role, c.Name, p),
				"mount its directory with `volumes: [{host_path: DIR, container_path: DIR}]`, or use a path relative to the pipeline file (its directory is mounted)")
		}
		return
	}
	dir := path.Dir(path.Clean(filepath.ToSlash(p)))
	// A glob's directory is the part before its first pattern.
	for strings.ContainsAny(dir, "*?[") {
		dir = path.Dir(dir)
	}
	if dir == ".." || strings.HasPrefix(dir, "../") {
		// Mounted outside /etc/flowctl it could cover /etc or even /.
		pl.warn(c, "config."+field, fmt.Sprintf("%s %q uses %s, outside the pipeline file's directory: it is not mounted, so it is read from (or written to) the container's own file system", c.Role, c.Name, p),
			"keep the file under the pipeline file's directory (that part is mounted), or mount it with `volumes:` and an absolute path")
		return
	}
	n.dataDir = &dataDir{
		rel:      dir,
		target:   path.Join(pipelineDir, dir),
		readOnly: c.Role != flow.RoleSink, // a processor's file is its code (wasm module:)
		field:    field,
	}
}

// listenFields are the built-ins that listen inside their node's
// container (by namespaced id, the config field with host:port).
var listenFields = map[string]string{
	"source.http": "address",
}

// listenAddress warns about where a built-in listens inside its node's
// container: on loopback nothing outside the container reaches it (a
// published port neither), which under `flowctl run` is this machine; on
// the node's own stream or http port one of the two cannot bind, and the
// node stops.
func (pl *plan) listenAddress(n *node, field string) {
	c := n.c
	addr, _ := c.Config[field].(string)
	if addr == "" && pl.opts.Registry != nil {
		if cs, err := pl.opts.Registry.Lookup(c.Role, c.Type); err == nil {
			for _, f := range cs.Fields {
				if f.Name == field {
					addr, _ = f.Default.(string)
				}
			}
		}
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return
	}
	if host == "localhost" || net.ParseIP(host).IsLoopback() {
		pl.warn(c, "config."+field, fmt.Sprintf("%s %q listens on %s: inside its container that is the container itself, so neither the other services nor a published port reach it", c.Role, c.Name, addr),
			fmt.Sprintf("set config.%s: 0.0.0.0:%s (every interface of the container)", field, port))
	}
	taken := port == strconv.Itoa(httpPort)
	what := fmt.Sprintf("%d: http", httpPort)
	if pl.receives(n) {
		taken = taken || port == strconv.Itoa(nodePort)
		what = fmt.Sprintf("%d: stream, %s", nodePort, what)
	}
	if taken {
		pl.warn(c, "config."+field, fmt.Sprintf("%s %q listens on port %s, which its node takes in the same container (%s): the node stops with \"address already in use\"", c.Role, c.Name, port, what),
			"have the component listen on another port (and publish that one)")
	}
}

// optionalBuiltins are the built-ins that only a flowctl built with a tag
// has (components.OptionalParts): how to build it, and how to give the
// nodes such a binary.
var optionalBuiltins = map[string]struct{ build, fix string }{
	"sink.arrow": {"-tags arrow",
		"build that image's binary with `CGO_ENABLED=0 GOOS=linux go build -tags arrow -o flowctl ./cmd/flowctl` (it stays static, so the same Dockerfile works)"},
	"sink.duckdb": {"-tags duckdb and cgo",
		"build that image's binary with `CGO_ENABLED=1 GOOS=linux go build -tags duckdb -o flowctl ./cmd/flowctl` and the image FROM a base with the C library that binary links (e.g. debian:bookworm-slim) instead of scratch"},
}

// localFileFields are the built-ins whose config names a file of the
// machine they run on (by namespaced id, the field): in a container that
// file must be mounted.
var localFileFields = map[string]string{
	"source.file":    "path",
	"source.dlq":     "path",
	"sink.file":      "path",
	"sink.sqlite":    "path",
	"sink.duckdb":    "path", // a file, as for sqlite
	"sink.parquet":   "path", // a directory: its parent is mounted
	"sink.arrow":     "path", // a directory, as for parquet
	"processor.wasm": "module",
}

// componentPort picks the port of an image component's container the node
// talks to: the port named after its protocol (grpc, http), else the one
// port given, else the first that is not a health or metrics port.
func componentPort(pl *plan, n *node) int {
	c := n.c
	var candidates []spec.Port
	for _, p := range c.Ports {
		switch strings.ToLower(p.Name) {
		case "grpc", "http", strings.ToLower(c.Protocol):
			return p.ContainerPort
		case "health", "metrics":
			continue
		}
		candidates = append(candidates, p)
	}
	if len(candidates) > 0 {
		return candidates[0].ContainerPort
	}
	const fallback = 50051
	pl.warn(c, "image", fmt.Sprintf("%s %q has no container port the node could talk to; assuming %d", c.Role, c.Name, fallback),
		"add `ports: [{name: grpc, containerPort: PORT}]` with the port the component listens on")
	return fallback
}

// mounted reports whether a container path lies under one of c's volumes.
func mounted(c *spec.Component, path string) bool {
	for _, v := range c.Volumes {
		dir := volumeTarget(v)
		if dir != "" && (path == dir || strings.HasPrefix(path, strings.TrimSuffix(dir, "/")+"/")) {
			return true
		}
	}
	return false
}

// volumeTarget is where a volume is mounted in the container:
// container_path, else mountPath, else host_path (the same path inside).
func volumeTarget(v spec.Volume) string {
	switch {
	case v.ContainerPath != "":
		return v.ContainerPath
	case v.MountPath != "":
		return v.MountPath
	}
	return v.HostPath
}

// checkpoints asks the registry whether c's built-in resumes from committed
// positions, by building it (construction has no side effects).
func checkpoints(c *spec.Component, reg *flow.Registry, p *spec.Pipeline) bool {
	if reg == nil || c.Runner != spec.RunBuiltin {
		return false
	}
	cs, err := reg.Lookup(c.Role, c.Type)
	if err != nil || cs.New == nil {
		return false
	}
	v, err := cs.New(flow.BuildContext{
		Name: c.Name, Pipeline: p.Name, Config: c.Config,
		Dir: filepath.Dir(p.File), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return false
	}
	_, ok := v.(flow.Resumer)
	return ok
}

// dnsName makes s a DNS label of at most max characters: lower-case
// letters, digits and '-', starting and ending with a letter or digit.
func dnsName(s string, max int) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	out := strings.TrimRight(b.String(), "-")
	if len(out) > max {
		out = strings.TrimRight(out[:max], "-")
	}
	if out == "" {
		out = "component"
	}
	return out
}

// boundedName is s made a DNS label of at most max characters that stays
// apart from every other s: where dnsName would cut it, the cut name ends
// in a hash of the whole, so that names sharing a long prefix (a
// pipeline's long name followed by each node's) do not become one. A name
// that fits is dnsName's.
func boundedName(s string, max int) string {
	full := dnsName(s, math.MaxInt)
	if len(full) <= max {
		return full
	}
	sum := sha256.Sum256([]byte(full))
	tag := hex.EncodeToString(sum[:4])
	return strings.TrimRight(full[:max-len(tag)-1], "-") + "-" + tag
}

// pos finds where a field of c is written: the first of paths recorded,
// else the nearest enclosing field of the first path, else the
// component's entry.
func pos(c *spec.Component, paths ...string) spec.Pos {
	for _, p := range paths {
		if at, ok := c.Positions[p]; ok {
			return at
		}
	}
	if len(paths) > 0 {
		p := paths[0]
		for {
			i := strings.LastIndexAny(p, ".[")
			if i <= 0 {
				break
			}
			p = p[:i]
			if at, ok := c.Positions[p]; ok {
				return at
			}
		}
	}
	return c.Pos
}

// pipelinePath is where the pipeline file is in every node container.
func (pl *plan) pipelinePath() string {
	return path.Join(pipelineDir, filepath.Base(pl.fileName()))
}

func (pl *plan) fileName() string {
	if pl.p.File == "" {
		return spec.StdinName
	}
	return pl.p.File
}

func (pl *plan) posString(at spec.Pos) string {
	return fmt.Sprintf("%s:%d:%d", pl.fileName(), at.Line, at.Col)
}

// warn records a warning at the field path of c (see pos for spellings:
// several may be given, separated by "|").
func (pl *plan) warn(c *spec.Component, path, msg, hint string) {
	pl.warnAt(pos(c, strings.Split(path, "|")...), msg, hint)
}

func (pl *plan) warnAt(at spec.Pos, msg, hint string) {
	pl.warnings = append(pl.warnings, spec.Diagnostic{
		File: pl.fileName(), Line: at.Line, Col: at.Col,
		Severity: spec.SevWarning, Message: msg, Hint: hint,
	})
}

// startOrder decides which services start after which. A node that sends
// retries until its receiver listens, so the order is only tidiness:
// receivers first (a service starts after the components it pushes to,
// and a node after the image it drives), so that a sender finds its
// peers up. The earlier format's explicit depends_on comes first and wins:
// a data edge that would close a cycle with it is left out.
func (pl *plan) startOrder() {
	edges := map[string]map[string]bool{}
	var reaches func(from, to string, seen map[string]bool) bool
	reaches = func(from, to string, seen map[string]bool) bool {
		if from == to {
			return true
		}
		if seen[from] {
			return false
		}
		seen[from] = true
		for next := range edges[from] {
			if reaches(next, to, seen) {
				return true
			}
		}
		return false
	}
	add := func(from, to string) {
		if from == to || reaches(to, from, map[string]bool{}) {
			return
		}
		if edges[from] == nil {
			edges[from] = map[string]bool{}
		}
		edges[from][to] = true
	}
	for _, n := range pl.nodes {
		for _, d := range n.c.DependsOn {
			if dn := pl.byComponent[d]; dn != nil {
				add(n.service, dn.service)
				if n.sidecar != "" {
					add(n.sidecar, dn.service)
				}
			}
		}
	}
	for _, n := range pl.nodes {
		if n.sidecar != "" {
			add(n.service, n.sidecar)
		}
	}
	for _, n := range pl.nodes {
		for _, d := range n.downstream {
			add(n.service, d.service)
		}
	}
	pl.after = map[string][]string{}
	for from, tos := range edges {
		for to := range tos {
			pl.after[from] = append(pl.after[from], to)
		}
		sort.Strings(pl.after[from])
	}
}
