package external

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"sort"

	"github.com/flowctl/flowctl/internal/drivers"
	// The docker driver registers itself as "docker" for `image:`
	// components.
	_ "github.com/flowctl/flowctl/internal/drivers/docker"
	"github.com/flowctl/flowctl/internal/spec"
)

// Driver names, and the labels the supervisor puts on what a driver
// creates (the docker driver adds its owner labels).
const (
	driverProcess = "process"
	driverDocker  = "docker"

	labelPipeline  = "flowctl.pipeline"
	labelComponent = "flowctl.component"
)

// ErrContainerField means an `image:` component uses a field flowctl run
// cannot give a container (the translators can).
var ErrContainerField = errors.New("not supported for containers under flowctl run")

// isContainer reports whether c runs from an image.
func isContainer(c *spec.Component) bool {
	return c.Runner == spec.RunContainer || (c.Runner == "" && c.Image != "")
}

// driverOf names the driver that runs c.
func driverOf(c *spec.Component) string {
	if isContainer(c) {
		return driverDocker
	}
	return driverProcess
}

// containerTask fills the container part of an `image:` component's task:
// command (which replaces the image's entrypoint) or args (which go to the
// image's own), working directory (a path in the container), mounts, and
// only flowctl's environment for it, never flowctl's own environment
// (the host's PATH would break the image's). Host paths of volumes and
// secrets are resolved against the pipeline file's directory.
func containerTask(rt *Runtime, c *spec.Component, env map[string]string, cfg *drivers.TaskConfig) error {
	cfg.Image = c.Image
	cfg.Dir = c.WorkingDir
	if len(c.Command) > 0 {
		cfg.Argv = append(append([]string(nil), c.Command...), c.Args...)
	} else {
		cfg.ImageArgs = append([]string(nil), c.Args...)
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	cfg.Env = make([]string, 0, len(keys))
	for _, k := range keys {
		cfg.Env = append(cfg.Env, k+"="+env[k])
	}
	mounts, err := containerMounts(c)
	if err != nil {
		return err
	}
	for i, m := range mounts {
		if !m.Volume && !filepath.IsAbs(m.Source) {
			if rt.Dir != "" {
				m.Source = filepath.Join(rt.Dir, m.Source)
			}
			if abs, err := filepath.Abs(m.Source); err == nil {
				m.Source = abs
			}
			mounts[i] = m
		}
	}
	cfg.Mounts = mounts
	cfg.Labels = map[string]string{labelPipeline: rt.Pipeline, labelComponent: c.Name}
	return nil
}

// containerMounts maps volumes and secrets to mounts: host_path →
// container_path (or mount_path) as a bind mount; a volume with only a
// name and a mount_path as a named Docker volume; a secret's host_path
// read-only at its container_path. Anything else is an error naming the
// field.
func containerMounts(c *spec.Component) ([]drivers.Mount, error) {
	var out []drivers.Mount
	var errs []error
	for i, v := range c.Volumes {
		target := v.ContainerPath
		if target == "" {
			target = v.MountPath
		}
		field := fieldAt(c, fmt.Sprintf("volumes[%d]", i))
		switch {
		case target == "":
			errs = append(errs, fmt.Errorf("%s: no container_path (or mount_path): say where it goes in the container", field))
		case !path.IsAbs(target):
			errs = append(errs, fmt.Errorf("%s: container_path %q is not absolute", field, target))
		case v.HostPath != "":
			out = append(out, drivers.Mount{Source: v.HostPath, Target: target, ReadOnly: v.ReadOnly})
		case v.Name != "":
			out = append(out, drivers.Mount{Source: v.Name, Target: target, Volume: true, ReadOnly: v.ReadOnly})
		default:
			errs = append(errs, fmt.Errorf("%s: neither host_path nor name: say what to mount", field))
		}
	}
	for i, s := range c.Secrets {
		field := fieldAt(c, fmt.Sprintf("secrets[%d]", i))
		switch {
		case s.HostPath == "" || s.ContainerPath == "":
			errs = append(errs, fmt.Errorf("%s: a secret for a container under flowctl run is a file: set host_path and container_path (%w)", field, ErrContainerField))
		case !path.IsAbs(s.ContainerPath):
			errs = append(errs, fmt.Errorf("%s: container_path %q is not absolute", field, s.ContainerPath))
		default:
			out = append(out, drivers.Mount{Source: s.HostPath, Target: s.ContainerPath, ReadOnly: true})
		}
	}
	return out, errors.Join(errs...)
}

// fieldAt names c's field for an error, with its line and column in the
// pipeline file when known.
func fieldAt(c *spec.Component, field string) string {
	if pos, ok := c.Positions[field]; ok && pos.Line > 0 {
		return fmt.Sprintf("line %d col %d: component %q %s", pos.Line, pos.Col, c.Name, field)
	}
	return fmt.Sprintf("component %q %s", c.Name, field)
}

// checkContainer reports what of c flowctl run cannot give a container.
func checkContainer(c *spec.Component) error {
	if c.Image == "" {
		return fmt.Errorf("component %q runs in a container but has no image", c.Name)
	}
	_, err := containerMounts(c)
	return err
}
