package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/flowctl/flowctl/internal/drivers"
)

// Name is the driver's name.
const Name = "docker"

// Labels on every container the driver creates. Pipeline and component
// come from TaskConfig.Labels (the supervisor sets them); the owner labels
// are the driver's own and decide what Reap removes.
const (
	LabelManaged   = "flowctl.managed"
	LabelPipeline  = "flowctl.pipeline"
	LabelComponent = "flowctl.component"
	LabelOwnerHost = "flowctl.owner.host"
	LabelOwnerPID  = "flowctl.owner.pid"
	LabelRun       = "flowctl.run"
)

// ErrImageMissing is wrapped by the error for an image that is not in
// the local daemon.
var ErrImageMissing = errors.New("flowctl never pulls images")

// ErrUnavailable means the Docker daemon could not be reached.
var ErrUnavailable = errors.New("docker daemon unavailable")

// connectTimeout bounds the first contact with the daemon.
const connectTimeout = 10 * time.Second

// Driver starts containers. Its zero value is not usable; use New.
type Driver struct {
	opts  []client.Opt
	runID string
	host  string

	mu  sync.Mutex
	cli *client.Client // nil until the daemon answered once

	reapOnce sync.Once
	seq      atomic.Int64
}

// New returns a driver that reaches the daemon as the docker CLI does
// (DOCKER_HOST and friends, else the local socket), or through opts.
func New(opts ...client.Opt) *Driver {
	if len(opts) == 0 {
		opts = []client.Opt{client.FromEnv}
	}
	var b [6]byte
	rand.Read(b[:])
	host, _ := os.Hostname()
	return &Driver{opts: opts, runID: hex.EncodeToString(b[:]), host: host}
}

func init() { drivers.Register(New()) }

// Name returns "docker".
func (d *Driver) Name() string { return Name }

// RunID is the id this driver labels its containers with (LabelRun).
func (d *Driver) RunID() string { return d.runID }

// Client returns the driver's Docker client, connecting on first use: a
// daemon that is down now may be up for the next start, so a failure is
// not kept.
func (d *Driver) Client(ctx context.Context) (*client.Client, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cli != nil {
		return d.cli, nil
	}
	cli, err := client.New(d.opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	pctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if _, err := cli.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		cli.Close()
		return nil, fmt.Errorf("%w: %v (is Docker running, and may this user use it?)", ErrUnavailable, err)
	}
	d.cli = cli
	return cli, nil
}

// Start creates the container, attaches to its streams, starts it and
// returns its handle. The first Start of a driver reaps the containers of
// flowctl processes that are gone.
func (d *Driver) Start(ctx context.Context, cfg drivers.TaskConfig) (drivers.Handle, error) {
	if cfg.Image == "" {
		return nil, fmt.Errorf("start %s: no image", cfg.Name)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cli, err := d.Client(ctx)
	if err != nil {
		return nil, fmt.Errorf("start %s (image %s): %w", cfg.Name, cfg.Image, err)
	}
	d.reapOnce.Do(func() {
		n, err := d.Reap(ctx)
		switch {
		case err != nil:
			cfg.Logger.Warn("could not reap containers left by a flowctl that is gone", "err", err)
		case n > 0:
			cfg.Logger.Info("removed containers left by a flowctl that is gone", "containers", n)
		}
	})
	if _, err := cli.ImageInspect(ctx, cfg.Image); err != nil {
		if cerrdefs.IsNotFound(err) {
			return nil, fmt.Errorf("start %s: image %q is not in the local Docker daemon, and %w: build it (docker build -t %s DIR), load it (docker load -i FILE.tar) or import a root file system (docker import FILE.tar %s)",
				cfg.Name, cfg.Image, ErrImageMissing, cfg.Image, cfg.Image)
		}
		return nil, fmt.Errorf("start %s: inspect image %q: %w", cfg.Name, cfg.Image, err)
	}
	if hostNetworkNote != "" {
		cfg.Logger.Warn(hostNetworkNote)
	}

	env := cfg.Env
	if env == nil {
		env = []string{}
	}
	labels := maps.Clone(cfg.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[LabelManaged] = "true"
	labels[LabelOwnerHost] = d.host
	labels[LabelOwnerPID] = strconv.Itoa(os.Getpid())
	labels[LabelRun] = d.runID
	if _, ok := labels[LabelComponent]; !ok && cfg.Name != "" {
		labels[LabelComponent] = cfg.Name
	}
	ccfg := &container.Config{
		Image:        cfg.Image,
		Env:          env,
		WorkingDir:   cfg.Dir,
		Labels:       labels,
		AttachStdout: true,
		AttachStderr: true,
	}
	switch {
	case len(cfg.Argv) > 0:
		// `command:` replaces the image's entrypoint; the image's own
		// arguments then no longer apply (as with docker run --entrypoint).
		ccfg.Entrypoint = cfg.Argv
		ccfg.Cmd = []string{}
	case len(cfg.ImageArgs) > 0:
		ccfg.Cmd = cfg.ImageArgs
	}
	if cfg.Stdio {
		ccfg.OpenStdin, ccfg.StdinOnce, ccfg.AttachStdin = true, true, true
	}
	initProc := true
	hcfg := &container.HostConfig{
		NetworkMode: "host",
		// An init as pid 1 forwards SIGTERM to the component and reaps its
		// children; a program run as pid 1 itself ignores signals it has
		// no handler for.
		Init:          &initProc,
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
	}
	for _, m := range cfg.Mounts {
		mt := mount.TypeBind
		if m.Volume {
			mt = mount.TypeVolume
		}
		hcfg.Mounts = append(hcfg.Mounts, mount.Mount{Type: mt, Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly})
	}
	name := fmt.Sprintf("flowctl-%s-%s-%d", containerName(cfg.Name), d.runID, d.seq.Add(1))
	created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{Name: name, Config: ccfg, HostConfig: hcfg})
	if err != nil {
		return nil, fmt.Errorf("start %s: create container from %s: %w", cfg.Name, cfg.Image, err)
	}
	id := created.ID
	fail := func(err error) (drivers.Handle, error) {
		rctx, cancel := context.WithTimeout(context.Background(), removeTimeout)
		defer cancel()
		cli.ContainerRemove(rctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		return nil, fmt.Errorf("start %s (image %s): %w", cfg.Name, cfg.Image, err)
	}
	// Attach and wait before starting, so that no output line and no exit
	// is missed.
	att, err := cli.ContainerAttach(ctx, id, client.ContainerAttachOptions{
		Stream: true, Stdin: cfg.Stdio, Stdout: true, Stderr: true,
	})
	if err != nil {
		return fail(fmt.Errorf("attach: %w", err))
	}
	wctx, stopWait := context.WithCancel(context.Background())
	wait := cli.ContainerWait(wctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
	h := newHandle(cli, id, cfg, att.HijackedResponse)
	if _, err := cli.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		stopWait()
		att.Close()
		return fail(err)
	}
	h.status.StartedAt = time.Now()
	cfg.Logger.Debug("container started", "container", h.status.ID, "image", cfg.Image, "argv", cfg.Argv)
	h.startCapture()
	go h.own(wait, stopWait)
	return h, nil
}

// removeTimeout bounds the removal of one container.
const removeTimeout = 30 * time.Second

// containerName keeps what Docker accepts in a name ([a-zA-Z0-9_.-]).
func containerName(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '.', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "task"
	}
	return b.String()
}

// Reap removes the containers this driver's labels mark as flowctl's that
// were started on this host by a flowctl process that no longer exists
// (one that was SIGKILLed, or whose machine rebooted). It returns how many
// it removed. Containers of live flowctl processes, this one included, are
// left alone.
func (d *Driver) Reap(ctx context.Context) (int, error) {
	cli, err := d.Client(ctx)
	if err != nil {
		return 0, err
	}
	f := client.Filters{}
	f.Add("label", LabelManaged+"=true")
	f.Add("label", LabelOwnerHost+"="+d.host)
	list, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return 0, fmt.Errorf("list flowctl's containers: %w", err)
	}
	var errs []error
	n := 0
	for _, c := range list.Items {
		// Only containers this driver started carry an owner pid; others
		// labelled flowctl's (a Compose service, say) are not ours to reap.
		pid, err := strconv.Atoi(c.Labels[LabelOwnerPID])
		if err != nil || processAlive(pid) {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, removeTimeout)
		_, err = cli.ContainerRemove(rctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		cancel()
		switch {
		case err == nil:
			n++
		case !cerrdefs.IsNotFound(err):
			errs = append(errs, fmt.Errorf("remove container %s: %w", shortID(c.ID), err))
		}
	}
	return n, errors.Join(errs...)
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

var _ drivers.Driver = (*Driver)(nil)
