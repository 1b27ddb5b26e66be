package translate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/flowctl/flowctl/internal/spec"
)

// Nomad, as its HTTP API and `nomad job run -json` take a job: {"Job":
// {...}}, built from the api package's own structs so every field name is
// Nomad's. The decisions (docs/nomad.md says more):
//
//   - one job (type service, datacenters ["*"]: every datacenter, Nomad
//     1.5's default) and a group per node, Count = replicas;
//   - the group's network is a bridge with two ports mapped to the node's
//     fixed ones (stream → 7000 for a receiving node, http → 9090), so
//     every node looks as it does under Compose;
//   - every node registers a Nomad service (provider "nomad": no Consul)
//     checked on /healthz; a node finds its downstream nodes through a
//     template over `nomadService`, rendered into environment variables
//     its --peer arguments interpolate (Nomad's services are not in DNS);
//   - the pipeline file travels inside the job, as a template with
//     delimiters nothing in the file uses, mounted at /etc/flowctl/FILE;
//   - secrets are never in the job: templates read them from Nomad
//     Variables, and a warning says which `nomad var put` fills them; so
//     are the files and variables a built-in reads secrets from
//     (secretfields.go), and the file's ${VAR}s a node cannot start
//     without (passedVars).

// NomadFileSuffix ends the name of the job file translate writes.
const NomadFileSuffix = ".nomad.json"

// Names inside a group.
const (
	nomadNodeTask      = "node"
	nomadComponentTask = "component"
	nomadStreamPort    = "stream"
	nomadHTTPPort      = "http"
	// nomadDataDirMeta is the job meta key naming the Nomad client's
	// directory that stands for the pipeline file's directory.
	nomadDataDirMeta = "flowctl_data_dir"
	// nomadMaxKill is the Nomad client's default max_kill_timeout.
	nomadMaxKill = 30 * time.Second
	// nomadMHzPerCore turns CPU cores into Nomad's MHz shares.
	nomadMHzPerCore = 1000
	// nomadSecretsEnv is the env template of the variables a task takes
	// from its Nomad variable: those a built-in reads secrets from, and
	// the pipeline file's ${VAR}s a node expands the file with.
	nomadSecretsEnv = "secrets/flowctl-secrets.env"
)

// nomadBuilder renders a plan as one Nomad job.
type nomadBuilder struct {
	pl  *plan
	job *api.Job
	id  string
	// vars are the pipeline file's ${VAR}s that every node task takes
	// from its Nomad variable (passedVars); taken are those some task
	// does (one whose component's env: sets it does not).
	vars  []varRef
	taken map[string]bool
	// data is the pipeline file every node task carries, read once, and
	// delims the template delimiters that occur nowhere in it.
	data   string
	delims [2]string
}

// NomadJobID is the ID of the Nomad job a pipeline becomes: its name as a
// DNS label, as apply, get and delete find it (a long name cut with a hash
// of the whole, so two long names stay two jobs).
func NomadJobID(pipeline string) string { return boundedName(pipeline, maxDNSLabel) }

func nomadFiles(pl *plan) (*Result, error) {
	p := pl.p
	if pl.opts.TLS {
		return nil, fmt.Errorf("--tls is not supported with --to nomad yet: Nomad gives each node an address (host IP and a dynamic port) known only at run time, so no certificate made here can name it; the nodes run with --insecure, see docs/nomad.md")
	}
	b := &nomadBuilder{pl: pl, id: NomadJobID(p.Name), taken: map[string]bool{}}
	b.data = b.pipelineData()
	b.delims = templateDelims(b.data)
	// The nodes expand the ${VAR}s of the file the job carries.
	// PipelineData is apply's, with them substituted already.
	if pl.opts.PipelineData == nil {
		for _, v := range passedVars(fileVars([]byte(b.data))) {
			// Nomad sets NOMAD_* in every task (NOMAD_ALLOC_INDEX,
			// NOMAD_ALLOC_ID...): a template would override them.
			if !strings.HasPrefix(v.name, "NOMAD_") {
				b.vars = append(b.vars, v)
			}
		}
	}
	if b.id != p.Name {
		pl.warnAt(spec.Pos{Line: 1, Col: 1}, fmt.Sprintf("pipeline %q becomes Nomad job %q", p.Name, b.id),
			"job IDs are written as DNS names here (lower-case letters, digits and '-'); rename the pipeline to keep its name")
	}
	job := &api.Job{
		ID:          new(b.id),
		Name:        new(b.id),
		Type:        new("service"),
		Datacenters: []string{"*"},
		Meta:        map[string]string{},
	}
	if p.Namespace != "" {
		ns := p.Namespace
		if !validNomadName(ns) {
			ns = dnsName(ns, maxDNSLabel)
			pl.warnAt(spec.Pos{Line: 1, Col: 1}, fmt.Sprintf("namespace %q becomes Nomad namespace %q", p.Namespace, ns),
				"Nomad namespaces are letters, digits, '-' and '_'")
		}
		job.Namespace = new(ns)
	}
	for k, v := range p.Labels {
		job.Meta[k] = v
	}
	for k, v := range p.Annotations {
		if old, clash := job.Meta[k]; clash && old != v {
			pl.warnAt(spec.Pos{Line: 1, Col: 1}, fmt.Sprintf("metadata annotation %q overrides the label of the same name in the job's meta", k),
				"Nomad has one meta map for both; give them different names")
		}
		job.Meta[k] = v
	}
	job.Meta["flowctl.pipeline"] = p.Name
	job.Meta["flowctl.generated"] = fmt.Sprintf("flowctl translate --to nomad from %s; do not edit, change the pipeline file and translate again", filepath.Base(pl.fileName()))
	if p.Description != "" {
		job.Meta["flowctl.description"] = p.Description
	}
	b.job = job
	pl.warnAt(spec.Pos{Line: 1, Col: 1}, "the nodes talk to each other in plaintext (--insecure) at the addresses Nomad gives them (client IP and a dynamic port)",
		"keep the Nomad clients on a private network; --tls is not supported with --to nomad yet")
	pl.warnAt(spec.Pos{Line: 1, Col: 1}, "the job is a Nomad service job: Nomad restarts (or places again) a task that exits, even with status 0, so the nodes of a pipeline that ends run it again",
		"run pipelines that end (bounded sources) with flowctl run or docker-compose; for a pipeline that runs until stopped this is what you want")
	dataDirs := false
	for _, n := range pl.nodes {
		job.TaskGroups = append(job.TaskGroups, b.group(n))
		if n.dataDir != nil {
			dataDirs = true
		}
	}
	if dataDirs {
		job.Meta[nomadDataDirMeta] = "/srv/flowctl/" + b.id
	}
	b.varWarnings()
	data, err := nomadJSON(job)
	if err != nil {
		return nil, err
	}
	return &Result{Files: []File{{Name: b.id + NomadFileSuffix, Data: data}}}, nil
}

// nomadJSON writes {"Job": job} with two-space indentation, leaving out
// the fields that are null (an absent field decodes to the same nil).
// Objects come out with sorted keys, so the file is the same on every run.
func nomadJSON(job *api.Job) ([]byte, error) {
	raw, err := json.Marshal(map[string]any{"Job": job})
	if err != nil {
		return nil, fmt.Errorf("encode nomad job: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("encode nomad job: %w", err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(dropNulls(v)); err != nil {
		return nil, fmt.Errorf("encode nomad job: %w", err)
	}
	return buf.Bytes(), nil
}

func dropNulls(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			if x == nil {
				delete(t, k)
				continue
			}
			t[k] = dropNulls(x)
		}
	case []any:
		for i, x := range t {
			t[i] = dropNulls(x)
		}
	}
	return v
}

// group is the task group of one node: the node task, and for an image
// component its image as a sidecar task next to it.
func (b *nomadBuilder) group(n *node) *api.TaskGroup {
	pl, c := b.pl, n.c
	count := 1
	if _, set := c.Positions["replicas"]; set {
		count = c.Replicas
	}
	g := &api.TaskGroup{
		Name:  new(n.service),
		Count: new(count),
		Meta:  map[string]string{"flowctl.component": c.Name},
	}
	net := &api.NetworkResource{Mode: "bridge"}
	if pl.receives(n) {
		net.DynamicPorts = append(net.DynamicPorts, api.Port{Label: nomadStreamPort, To: nodePort})
	}
	net.DynamicPorts = append(net.DynamicPorts, api.Port{Label: nomadHTTPPort, To: httpPort})
	net.ReservedPorts = b.hostPorts(c)
	g.Networks = []*api.NetworkResource{net}
	g.Services = []*api.Service{b.service(n)}
	g.RestartPolicy = b.restart(c)
	if c.RestartPolicy == "no" {
		g.ReschedulePolicy = &api.ReschedulePolicy{Attempts: new(0), Unlimited: new(false)}
	}
	if n.checkpoints {
		g.EphemeralDisk = &api.EphemeralDisk{Sticky: new(true), Migrate: new(true)}
		pl.warn(c, "type|image|name", fmt.Sprintf("%s %q keeps its state (checkpoints) in the allocation's ephemeral disk (sticky, migrate): it survives restarts and updates on the same client and is copied on a best-effort basis when the allocation moves, but is lost with the client", c.Role, c.Name),
			fmt.Sprintf("for durable checkpoints use a Nomad host or CSI volume instead of ephemeral_disk and mount it at %s in task %q of group %q", stateDir, nomadNodeTask, n.service))
	}
	g.Tasks = append(g.Tasks, b.nodeTask(n))
	if n.sidecar != "" {
		g.Tasks = append(g.Tasks, b.sidecarTask(n))
	}
	for _, d := range c.DependsOn {
		if pl.byComponent[d] != nil {
			pl.warn(c, "depends_on", fmt.Sprintf("%s %q: depends_on is not translated: Nomad starts the groups of a job independently", c.Role, c.Name),
				"nothing is lost: a node retries its downstream nodes with backoff until they listen")
			break
		}
	}
	return g
}

// service registers the node in Nomad's own service catalogue: its stream
// port where other nodes push to it, else its http port, checked on
// /healthz either way.
func (b *nomadBuilder) service(n *node) *api.Service {
	c := n.c
	port := nomadHTTPPort
	if b.pl.receives(n) {
		port = nomadStreamPort
	}
	grace := c.StartupTimeout
	if grace <= 0 {
		grace = spec.DefaultStartupTimeout
	}
	return &api.Service{
		Name:      b.serviceName(n),
		PortLabel: port,
		Provider:  "nomad",
		Tags:      []string{"flowctl", string(c.Role)},
		Checks: []api.ServiceCheck{{
			Name:      "healthz",
			Type:      "http",
			Path:      "/healthz",
			PortLabel: nomadHTTPPort,
			Interval:  10 * time.Second,
			Timeout:   5 * time.Second,
		}},
		CheckRestart: &api.CheckRestart{Limit: 3, Grace: new(grace)},
	}
}

// serviceName is a node's Nomad service: Nomad's services are per
// namespace, so the job's ID comes first. Cut to a DNS label, each keeps
// a hash of the whole: cut alone, a long job ID would give every node the
// same service, and each node would send to all of them.
func (b *nomadBuilder) serviceName(n *node) string {
	return boundedName(b.id+"-"+n.service, maxDNSLabel)
}

// nodeTask runs `flowctl node` for n's component.
func (b *nomadBuilder) nodeTask(n *node) *api.Task {
	pl, c := b.pl, n.c
	file := filepath.Base(pl.fileName())
	args := []string{"node", "-f", pl.pipelinePath(), "--component", c.Name, "--http", fmt.Sprintf("0.0.0.0:%d", httpPort)}
	if pl.receives(n) {
		args = append(args, "--listen", fmt.Sprintf("0.0.0.0:%d", nodePort))
	}
	if n.sidecar != "" {
		// The same network namespace: the image serves on loopback.
		args = append(args, "--peer", fmt.Sprintf("%s=127.0.0.1:%d", c.Name, n.componentPort))
	}
	var peers strings.Builder
	for _, d := range n.downstream {
		env := peerEnv(d)
		args = append(args, "--peer", fmt.Sprintf("%s=${%s}", d.c.Name, env))
		// Every instance of the downstream node's service, comma
		// separated; an address that never resolves until there is one
		// (the node retries it, and the template restarts the task with
		// the real ones once they are registered).
		fmt.Fprintf(&peers, "{{ with nomadService %q }}%s={{ range $i, $s := . }}{{ if $i }},{{ end }}{{ $s.Address }}:{{ $s.Port }}{{ end }}{{ else }}%s=%s.unregistered.invalid:%d{{ end }}\n",
			b.serviceName(d), env, env, d.service, nodePort)
	}
	args = append(args, "--insecure")
	if n.checkpoints {
		args = append(args, "--state-dir", stateDir)
	}
	cfg := map[string]any{
		"image":      pl.opts.Image,
		"entrypoint": []string{flowctlBin},
		"args":       args,
	}
	local := "local/" + file
	volumes := []string{local + ":" + pl.pipelinePath() + ":ro"}
	if d := n.dataDir; d != nil {
		m := fmt.Sprintf("${NOMAD_META_%s}/%s:%s", nomadDataDirMeta, d.rel, d.target)
		if d.rel == "." {
			m = fmt.Sprintf("${NOMAD_META_%s}:%s", nomadDataDirMeta, d.target)
		}
		if d.readOnly {
			m += ":ro"
		}
		volumes = append(volumes, m)
		src, _, _ := strings.Cut(m, ":")
		pl.warn(c, "config."+d.field, fmt.Sprintf("%s %q reads or writes %s under the pipeline file's directory: the job mounts %s of the Nomad client (meta %s = %q) at %s", c.Role, c.Name, c.Config[d.field], src, nomadDataDirMeta, "/srv/flowctl/"+b.id, d.target),
			"put the files there on the client that runs the group (or change the job's meta "+nomadDataDirMeta+"); the Nomad client needs plugin \"docker\" { config { volumes { enabled = true } } }")
	}
	if n.checkpoints {
		// The allocation's shared data directory, which ephemeral_disk
		// keeps (sticky) and moves (migrate).
		volumes = append(volumes, "../alloc/data/flowctl-state:"+stateDir)
	}
	t := &api.Task{
		Name:   nomadNodeTask,
		Driver: "docker",
		Config: cfg,
		Templates: []*api.Template{{
			EmbeddedTmpl: new(b.data),
			DestPath:     new(local),
			ChangeMode:   new("restart"),
			Perms:        new("0644"),
			LeftDelim:    new(b.delims[0]),
			RightDelim:   new(b.delims[1]),
		}},
	}
	if peers.Len() > 0 {
		t.Templates = append(t.Templates, &api.Template{
			EmbeddedTmpl: new(peers.String()),
			DestPath:     new("local/flowctl-peers.env"),
			Envvars:      new(true),
			ChangeMode:   new("restart"),
		})
	}
	if c.StopGrace > 0 {
		t.KillTimeout = new(c.StopGrace)
		if c.StopGrace > nomadMaxKill {
			pl.warn(c, "stop_grace", fmt.Sprintf("stop_grace %s is longer than a Nomad client's default max_kill_timeout (30s), which caps it", c.StopGrace),
				"raise max_kill_timeout in the Nomad client's configuration, or shorten stop_grace")
		}
	}
	if n.sidecar == "" {
		// The component runs inside the node: its own settings go here.
		volumes = append(volumes, b.common(n, t)...)
	}
	volumes = append(volumes, b.variable(n, t, nomadNodeTask, n.sidecar == "")...)
	cfg["volumes"] = volumes
	if c.HealthCheck != "" || c.HealthPort != 0 {
		what := "the node's own /healthz is checked instead"
		if n.sidecar != "" {
			what = fmt.Sprintf("task %q gets no check of its own; the node's /healthz and /readyz report whether it reaches the component", nomadComponentTask)
		}
		pl.warn(c, "health_check|health_port", fmt.Sprintf("%s %q: health_check/health_port are not translated", c.Role, c.Name), what)
	}
	return t
}

// peerEnv is the environment variable holding a downstream node's
// addresses (service names are [a-z0-9-], so this is one to one).
func peerEnv(d *node) string {
	return "FLOWCTL_PEER_" + strings.ToUpper(strings.ReplaceAll(d.service, "-", "_"))
}

// sidecarTask runs an image component's own image, started before the
// node and kept running next to it (a prestart sidecar).
func (b *nomadBuilder) sidecarTask(n *node) *api.Task {
	c := n.c
	b.pl.warn(c, "image", fmt.Sprintf("%s %q runs its image %s as task %q in the group of its node, which reaches it at 127.0.0.1:%d", c.Role, c.Name, c.Image, n.sidecar, n.componentPort),
		"the node and the image share the group's network; the image needs no flowctl inside")
	cfg := map[string]any{"image": c.Image}
	if len(c.Command) > 0 {
		cfg["entrypoint"] = c.Command
	}
	if len(c.Args) > 0 {
		cfg["args"] = c.Args
	}
	if c.WorkingDir != "" {
		cfg["work_dir"] = c.WorkingDir
	}
	t := &api.Task{
		Name:      nomadComponentTask,
		Driver:    "docker",
		Config:    cfg,
		Lifecycle: &api.TaskLifecycle{Hook: "prestart", Sidecar: true},
	}
	if c.StopGrace > 0 {
		t.KillTimeout = new(c.StopGrace)
	}
	vols := b.common(n, t)
	vols = append(vols, b.variable(n, t, nomadComponentTask, true)...)
	if len(vols) > 0 {
		cfg["volumes"] = vols
	}
	// Where its node dials it, as flowctl run sets PORT; a PORT of the
	// file's wins.
	if _, set := c.Env["PORT"]; !set {
		if t.Env == nil {
			t.Env = map[string]string{}
		}
		t.Env["PORT"] = fmt.Sprintf("0.0.0.0:%d", n.componentPort)
	}
	return t
}

// common sets what belongs to the task that runs the component's code
// (the node for a built-in or a process, the sidecar for an image): env,
// resources, user volumes (returned as docker volumes). Its secrets are
// the variable's.
func (b *nomadBuilder) common(n *node, t *api.Task) []string {
	pl, c := b.pl, n.c
	if len(c.Env) > 0 {
		t.Env = map[string]string{}
		for k, v := range c.Env {
			t.Env[k] = v
			if strings.Contains(v, "${") {
				pl.warn(c, "env."+k, fmt.Sprintf("env %s of %s %q holds ${...}: Nomad interpolates it in the task's environment (a variable Nomad knows is replaced)", k, c.Role, c.Name),
					"Nomad has no escape for ${ in a JSON job; avoid ${ in values, or read the value from a file")
			}
		}
	}
	if len(c.Args) > 0 && n.sidecar != "" && strings.Contains(strings.Join(c.Args, " "), "${") {
		pl.warn(c, "args", fmt.Sprintf("the args of %s %q hold ${...}: Nomad interpolates them", c.Role, c.Name), "avoid ${ in args under Nomad")
	}
	b.resources(c, t)
	// MemoryMB is the limit Nomad enforces (without memory
	// oversubscription; with it, memory_max may allow more).
	if t.Resources != nil && t.Resources.MemoryMB != nil {
		if v := nodeMemLimit(c, strconv.Itoa(*t.Resources.MemoryMB)+"Mi"); v != "" {
			if t.Env == nil {
				t.Env = map[string]string{}
			}
			t.Env["GOMEMLIMIT"] = v
		}
	}
	return b.userVolumes(c)
}

// hostPorts are the component's ports published on the client: hostPort
// as a static port mapped to the container's.
func (b *nomadBuilder) hostPorts(c *spec.Component) []api.Port {
	pl := b.pl
	var out []api.Port
	for i, p := range c.Ports {
		if p.HostPort == 0 {
			continue
		}
		switch proto := strings.ToLower(p.Protocol); proto {
		case "", "tcp", "udp":
		default:
			pl.warn(c, fmt.Sprintf("ports[%d].protocol", i), fmt.Sprintf("port protocol %q is not one Nomad maps; its bridge maps tcp and udp", p.Protocol), "use tcp or udp")
		}
		if c.Replicas > 1 {
			pl.warn(c, fmt.Sprintf("ports[%d].hostPort|ports[%d].host_port", i, i), fmt.Sprintf("host port %d is reserved by each of %d replicas: Nomad places them on different clients, or cannot place them", p.HostPort, c.Replicas),
				"drop hostPort (the nodes reach each other through Nomad's services), or run one replica")
		}
		out = append(out, api.Port{Label: fmt.Sprintf("host-%d", p.HostPort), Value: p.HostPort, To: p.ContainerPort})
	}
	return out
}

// restart maps restart_policy onto the group's restart block. Nomad
// cannot tell a task that failed from one that ended: a service job's
// task is restarted either way (a warning at the top says so).
func (b *nomadBuilder) restart(c *spec.Component) *api.RestartPolicy {
	switch c.RestartPolicy {
	case "no":
		b.pl.warn(c, "restart_policy", fmt.Sprintf("%s %q: restart_policy \"no\" becomes restart attempts 0 (mode fail) and reschedule attempts 0", c.Role, c.Name),
			"a Nomad service job still places an allocation again that ends when the job is updated; a task that fails stays failed")
		return &api.RestartPolicy{Attempts: new(0), Mode: new("fail")}
	case "always", "unless-stopped":
		return &api.RestartPolicy{Attempts: new(3), Interval: new(time.Minute), Delay: new(5 * time.Second), Mode: new("delay")}
	}
	// on-failure, the default: a few attempts, then Nomad reschedules.
	return &api.RestartPolicy{Attempts: new(3), Interval: new(5 * time.Minute), Delay: new(5 * time.Second), Mode: new("fail")}
}

// resources maps requests and limits onto the task's CPU (MHz) and memory
// (MB): Nomad reserves what it is given, and its memory is also the hard
// limit unless memory_max is set (and memory oversubscription enabled).
func (b *nomadBuilder) resources(c *spec.Component, t *api.Task) {
	pl, r := b.pl, c.Resources
	if r == (spec.Resources{}) {
		return
	}
	res := &api.Resources{}
	cpu := func(field, q string) (int, bool) {
		mhz, err := nomadCPU(q)
		if err != nil {
			pl.warn(c, field, "resources: "+err.Error()+"; left out", "")
			return 0, false
		}
		return mhz, true
	}
	mem := func(field, q string) (int, bool) {
		mb, exact, err := nomadMemoryMB(q)
		if err != nil {
			pl.warn(c, field, "resources: "+err.Error()+"; left out", "")
			return 0, false
		}
		if !exact {
			pl.warn(c, field, fmt.Sprintf("memory %q is not a whole number of MiB: Nomad takes %d MB", q, mb), "Nomad counts memory in MiB; write e.g. 512Mi")
		}
		return mb, true
	}
	if r.Requests.CPU != "" || r.Limits.CPU != "" {
		field, q := "resources.requests.cpu", r.Requests.CPU
		if q == "" {
			field, q = "resources.limits.cpu", r.Limits.CPU
		}
		if mhz, ok := cpu(field, q); ok {
			res.CPU = new(mhz)
			pl.warn(c, field, fmt.Sprintf("cpu %q becomes %d MHz of Nomad CPU (1 core = %d MHz)", q, mhz, nomadMHzPerCore),
				"Nomad measures CPU in MHz of the client's processors; adjust resources.cpu in the job to your clients")
			if r.Requests.CPU == "" {
				// A limit alone: a hard cap at that share.
				t.Config["cpu_hard_limit"] = true
			} else if r.Limits.CPU != "" {
				pl.warn(c, "resources.limits.cpu", fmt.Sprintf("resources.limits.cpu %q is not translated next to a request: a Nomad task has one CPU figure", r.Limits.CPU),
					"drop the request to make the limit a hard cap (docker cpu_hard_limit), or keep the request as a reservation")
			}
		}
	}
	switch {
	case r.Requests.Memory != "" && r.Limits.Memory != "":
		if mb, ok := mem("resources.requests.memory", r.Requests.Memory); ok {
			res.MemoryMB = new(mb)
		}
		if mb, ok := mem("resources.limits.memory", r.Limits.Memory); ok {
			res.MemoryMaxMB = new(mb)
			pl.warn(c, "resources.limits.memory", "resources.limits.memory becomes memory_max, which Nomad honours only with memory oversubscription enabled (otherwise the request is the hard limit)",
				"nomad operator scheduler set-config -memory-oversubscription=true")
		}
	case r.Limits.Memory != "":
		if mb, ok := mem("resources.limits.memory", r.Limits.Memory); ok {
			res.MemoryMB = new(mb)
		}
	case r.Requests.Memory != "":
		if mb, ok := mem("resources.requests.memory", r.Requests.Memory); ok {
			res.MemoryMB = new(mb)
			pl.warn(c, "resources.requests.memory", "resources.requests.memory is also the hard memory limit under Nomad", "set resources.limits.memory too if the component may use more")
		}
	}
	if res.CPU != nil || res.MemoryMB != nil || res.MemoryMaxMB != nil {
		t.Resources = res
	}
}

// nomadCPU turns a CPU quantity into Nomad MHz ("250m" → 250).
func nomadCPU(q string) (int, error) {
	s, err := composeCPUs(q)
	if err != nil {
		return 0, err
	}
	v, _ := strconv.ParseFloat(s, 64)
	mhz := int(math.Ceil(v * nomadMHzPerCore))
	if mhz < 1 {
		mhz = 1
	}
	return mhz, nil
}

// nomadMemoryMB turns a memory quantity into Nomad's MiB, rounded up;
// exact is false when it was not a whole number of MiB.
func nomadMemoryMB(q string) (mb int, exact bool, err error) {
	v, factor, _, err := parseMemory(q)
	if err != nil {
		return 0, false, err
	}
	mib := v * factor / (1 << 20)
	if mib > math.MaxInt32 {
		return 0, false, fmt.Errorf("memory %q is too large", q)
	}
	return int(math.Ceil(mib)), mib == math.Trunc(mib), nil
}

// userVolumes are the component's volumes as docker volumes: host paths
// as bind mounts, names as docker named volumes. Both need the client's
// docker plugin to allow volumes.
func (b *nomadBuilder) userVolumes(c *spec.Component) []string {
	pl := b.pl
	var out []string
	for i, v := range c.Volumes {
		target := volumeTarget(v)
		at := fmt.Sprintf("volumes[%d]", i)
		ro := ""
		if v.ReadOnly {
			ro = ":ro"
		}
		switch {
		case !strings.HasPrefix(target, "/"):
			pl.warn(c, at, fmt.Sprintf("volume %d of %s %q has no absolute container path (%q); left out", i+1, c.Role, c.Name, target),
				"give it `container_path: /absolute/path` (or mountPath)")
		case v.HostPath != "":
			src := filepath.ToSlash(v.HostPath)
			if !path.IsAbs(src) {
				src = fmt.Sprintf("${NOMAD_META_%s}/%s", nomadDataDirMeta, path.Clean(src))
				b.job.Meta[nomadDataDirMeta] = "/srv/flowctl/" + b.id
			}
			out = append(out, src+":"+target+ro)
			pl.warn(c, at, fmt.Sprintf("volume %d of %s %q mounts %s of the Nomad client that runs it", i+1, c.Role, c.Name, src),
				"the directory must exist on every client the group may run on, and the client needs plugin \"docker\" { config { volumes { enabled = true } } }; a Nomad host volume is the managed alternative")
		case v.Name != "":
			name := dnsName(v.Name, maxDNSLabel)
			out = append(out, name+":"+target+ro)
			pl.warn(c, at, fmt.Sprintf("volume %q of %s %q becomes docker volume %q on the Nomad client that runs it: it stays on that client", v.Name, c.Role, c.Name, name),
				"the client needs docker volumes enabled; for data that must follow the allocation use a Nomad host or CSI volume")
		default:
			pl.warn(c, at, fmt.Sprintf("volume %d of %s %q has neither a name nor a host_path; left out", i+1, c.Role, c.Name),
				"give it `name:` (a named volume) or `host_path:` (a directory of the client)")
		}
	}
	return out
}

// variable renders what task reads from its own Nomad variable,
// nomad/jobs/<job>/<group>/<task>, and returns the docker volumes that
// mount its files. The task that runs the component's code (code) gets
// each secret of c into its secrets directory, mounted where the
// component reads it (container_path, else /run/secrets/NAME), and the
// files and variables a built-in reads its secrets from; the node task
// gets the pipeline file's ${VAR}s (b.vars) that its env does not set.
// The job holds no value: one warning per task gives the command that
// stores them all (nomad var put replaces the whole variable).
func (b *nomadBuilder) variable(n *node, t *api.Task, task string, code bool) []string {
	pl, c := b.pl, n.c
	var secrets []spec.Secret
	var files []secretFile
	var envs []secretEnv
	if code {
		secrets, files, envs = c.Secrets, n.secretFiles, slices.Clone(n.secretEnvs)
	}
	hasSecrets := len(secrets) > 0 || len(files) > 0 || len(envs) > 0
	// The file's variables, into the environment too. One the task's env
	// sets (the component's env:) keeps that value: Nomad lets a
	// template's environment override the task's env.
	var fileVars []string
	for _, v := range b.vars {
		if _, set := t.Env[v.name]; set || task != nomadNodeTask {
			continue
		}
		b.taken[v.name] = true
		fileVars = append(fileVars, "${"+v.name+"}")
		if i := slices.IndexFunc(envs, func(e secretEnv) bool { return e.name == v.name }); i >= 0 {
			envs[i].required = true // the node does not start without it
			continue
		}
		envs = append(envs, secretEnv{name: v.name, required: true})
	}
	if !hasSecrets && len(fileVars) == 0 {
		return nil
	}
	varPath := fmt.Sprintf("nomad/jobs/%s/%s/%s", b.id, n.service, task)
	var out, items []string
	for i, s := range secrets {
		at := fmt.Sprintf("secrets[%d]", i)
		file := "secrets/" + dnsName(s.Name, maxDNSLabel)
		perms := "0400"
		if s.Mode != "" {
			if _, err := strconv.ParseUint(s.Mode, 8, 32); err == nil {
				perms = s.Mode
			} else {
				pl.warn(c, at+".mode", fmt.Sprintf("secret %q: mode %q is not an octal mode; 0400 is used", s.Name, s.Mode), "write the mode in octal, e.g. \"0440\"")
			}
		}
		t.Templates = append(t.Templates, &api.Template{
			EmbeddedTmpl: new(fmt.Sprintf("{{ with nomadVar %q }}{{ index . %q }}{{ end }}", varPath, s.Name)),
			DestPath:     new(file),
			ChangeMode:   new("restart"),
			Perms:        new(perms),
		})
		target := s.ContainerPath
		if target == "" {
			target = s.Name
		}
		if !strings.HasPrefix(target, "/") {
			target = "/run/secrets/" + target
		}
		out = append(out, file+":"+target+":ro")
		value := "VALUE"
		if s.HostPath != "" {
			value = "@" + s.HostPath
		}
		items = append(items, shellWord(s.Name+"="+value))
		if s.Env != "" {
			pl.warn(c, at+".env", fmt.Sprintf("secret %q is given as the file %s, not as the environment variable %s", s.Name, target, s.Env),
				"as with Compose, flowctl does not copy secrets into the environment; have the component read the file")
		}
		if s.Type != "" || len(s.Labels) > 0 {
			pl.warn(c, at+".type|"+at+".labels", fmt.Sprintf("secret %q: type and labels are not translated", s.Name), "a Nomad variable has neither")
		}
	}
	// The files and variables a built-in reads its secrets from (see
	// secretfields.go): items of the same variable.
	waits := len(secrets) > 0
	for _, f := range files {
		item := configMapKey(strings.ReplaceAll(f.rel, "/", "_"))
		file := "secrets/files/" + item
		t.Templates = append(t.Templates, &api.Template{
			EmbeddedTmpl: new(fmt.Sprintf("{{ with nomadVar %q }}{{ index . %q }}{{ end }}", varPath, item)),
			DestPath:     new(file),
			ChangeMode:   new("restart"),
			Perms:        new("0400"),
		})
		out = append(out, file+":"+f.target+":ro")
		items = append(items, shellWord(item+"=@"+f.rel))
		waits = true
	}
	if len(envs) > 0 {
		// An env template: the task gets each variable, and the job holds
		// no value. One the component can do without does not hold the
		// task up when the variable does not exist.
		// Nomad reads the rendered file as an env file (go-envparse):
		// each value is written as a JSON string, which it reads back
		// exactly, where a bare one would lose what follows a #, its
		// quotes and its surrounding spaces.
		var env strings.Builder
		for _, e := range envs {
			line := fmt.Sprintf("{{ with nomadVar %q }}%s={{ (index . %q).Value | toJSON }}{{ end }}", varPath, e.name, e.name)
			if !e.required {
				line = fmt.Sprintf("{{ if nomadVarExists %q }}%s{{ end }}", varPath, line)
			}
			env.WriteString(line + "\n")
			items = append(items, shellWord(e.name+"=VALUE"))
			waits = waits || e.required
		}
		t.Templates = append(t.Templates, &api.Template{
			EmbeddedTmpl: new(env.String()),
			DestPath:     new(nomadSecretsEnv),
			Envvars:      new(true),
			ChangeMode:   new("restart"),
		})
	}
	ns := ""
	if b.job.Namespace != nil {
		ns = " -namespace " + shellWord(*b.job.Namespace)
	}
	wait := "the task waits until it exists"
	if !waits {
		wait = "the task does not wait for it: without it the component runs without the secret"
	}
	msg := fmt.Sprintf("the secrets of %s %q are read from the Nomad variable %s", c.Role, c.Name, varPath)
	store := "store them before running the job (in the pipeline file's directory, which @FILE is relative to)"
	if vars := strings.Join(fileVars, ", "); !hasSecrets {
		msg = fmt.Sprintf("task %q of %s %q reads %s, which it expands the pipeline file with, from the Nomad variable %s", task, c.Role, c.Name, vars, varPath)
		store = "store them before running the job, with the values they have here"
	} else if len(fileVars) > 0 {
		msg = fmt.Sprintf("%s %q reads its secrets and %s, which it expands the pipeline file with, from the Nomad variable %s", c.Role, c.Name, vars, varPath)
		store = "store them before running the job (in the pipeline file's directory, which @FILE is relative to; " + vars + " with the values they have here)"
	}
	pl.warn(c, "secrets|type", fmt.Sprintf("%s (the job holds no value); %s", msg, wait),
		fmt.Sprintf("%s: nomad var put%s %s %s", store, ns, varPath, strings.Join(items, " ")))
	return out
}

// varWarnings says, once per ${VAR} a node task takes from its Nomad
// variable, where it gets its value.
func (b *nomadBuilder) varWarnings() {
	for _, v := range b.vars {
		if !b.taken[v.name] {
			continue // every component's env: sets it
		}
		b.pl.warnAt(v.pos, fmt.Sprintf("${%s} is expanded by each node from its task's environment: every node task takes %s from its own Nomad variable (nomad/jobs/%s/GROUP/node), unless the component it runs sets it in env:; the job holds no value", v.name, v.name, b.id),
			fmt.Sprintf("store %s there with the value it has here (the job was worked out with it) by the nomad var put each component's warning gives, or let flowctl apply --target nomad substitute the file; until it is stored, the node tasks wait (the variable has no default)", v.name))
	}
}

// shellWord quotes s for a POSIX shell when it needs it.
func shellWord(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=@:", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// pipelineData is the pipeline file the nodes read: the bytes apply
// substituted, else the file as it is on disk. nomadFiles reads it once,
// into b.data.
func (b *nomadBuilder) pipelineData() string {
	if b.pl.opts.PipelineData != nil {
		return string(b.pl.opts.PipelineData)
	}
	data, err := os.ReadFile(b.pl.p.File)
	if err != nil {
		b.pl.warnAt(spec.Pos{Line: 1, Col: 1}, fmt.Sprintf("the pipeline file cannot be read to put into the job: %v", err), "translate a file on disk")
		return ""
	}
	return string(data)
}

// templateDelims are template delimiters that occur nowhere in data (the
// pipeline file), so the template renders it byte for byte ({{ and ${VAR}
// stay as they are: Nomad does not interpolate a template's data).
func templateDelims(data string) [2]string {
	for i := 0; ; i++ {
		l, r := "[[flowctl-literal", "flowctl-literal]]"
		if i > 0 {
			l, r = fmt.Sprintf("[[flowctl-literal-%d", i), fmt.Sprintf("flowctl-literal-%d]]", i)
		}
		if !strings.Contains(data, l) && !strings.Contains(data, r) {
			return [2]string{l, r}
		}
	}
}

// validNomadName reports whether s is a name Nomad takes for a namespace.
func validNomadName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}
