package translate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
)

// Target names an engine translate writes for.
type Target string

// The targets, one file each on the shared plan.
const (
	DockerCompose Target = "docker-compose"
	Kubernetes    Target = "kubernetes"
	Nomad         Target = "nomad"
)

// Targets lists the targets translate knows, for help and error messages.
func Targets() []Target { return []Target{DockerCompose, Kubernetes, Nomad} }

// Options are what a translation needs besides the pipeline.
type Options struct {
	// Target is the engine to write for.
	Target Target
	// Image is flowctl's own image, which every node service runs
	// (built FROM scratch from the static binary; see Dockerfile).
	Image string
	// SourceDir is the pipeline file's directory as seen from the output
	// directory (e.g. "." or "../pipelines"): the pipeline file and
	// relative host paths are bind-mounted from there. "" means ".".
	SourceDir string
	// PipelineFile is the file mounted as the pipeline file, as seen from
	// the output directory, when it is not SourceDir's copy (apply mounts
	// the file with ${VAR} already substituted). "" means
	// SourceDir/<the pipeline file's name>. For Kubernetes it is read by
	// translate itself (a path of this machine) into the ConfigMap; ""
	// means the pipeline's own file.
	PipelineFile string
	// PipelineData is the pipeline file's content for a target that
	// carries the file inside what it writes (Nomad: a template), when it
	// is not the file on disk (apply passes it with ${VAR} substituted).
	// Nil means the file as read from the pipeline's path.
	PipelineData []byte
	// HostDir is the pipeline file's directory as an absolute path of the
	// machine the pods run on, for Kubernetes hostPath volumes (a
	// built-in's files, relative host_path volumes and secret files). ""
	// means the absolute directory of the pipeline file here; tests fix it
	// so that golden files hold no checkout path.
	HostDir string
	// Registry holds the built-in component specs; it tells which sources
	// checkpoint. Nil means none is known to.
	Registry *flow.Registry
	// Dockerfile also writes a Dockerfile (and nsswitch.conf) for Image.
	Dockerfile bool
	// TLS generates a CA and a certificate per service into tls/ and runs
	// the nodes with them; without it nodes run with --insecure on the
	// engine's private network, and a warning says so.
	TLS bool
	// Now is the start of the certificates' validity (nil: time.Now).
	Now func() time.Time
}

// File is one generated file, its Name relative to the output directory
// (slash-separated).
type File struct {
	Name string
	Data []byte
	Mode fs.FileMode
}

// Result is a translation: the files to write and the warnings about what
// the target could not express, in file order.
type Result struct {
	Files    []File
	Warnings spec.Diagnostics
}

// Main is the file a target's user hands to the engine (the Compose file).
func (r *Result) Main() File { return r.Files[0] }

// ErrUnknownTarget is returned for a target translate does not know.
var ErrUnknownTarget = errors.New("unknown target")

// Translate renders p for opts.Target. p must have validated without
// errors. Problems that make the output unusable (two components that
// become one service name) are errors; whatever the target cannot express
// is a warning in the Result.
func Translate(p *spec.Pipeline, opts Options) (*Result, error) {
	if p == nil {
		return nil, errors.New("translate: no pipeline")
	}
	if opts.Image == "" {
		return nil, errors.New("translate: no image given for flowctl's own image")
	}
	if opts.SourceDir == "" {
		opts.SourceDir = "."
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	pl, err := newPlan(p, opts)
	if err != nil {
		return nil, err
	}
	var res *Result
	switch opts.Target {
	case DockerCompose:
		res, err = composeFiles(pl)
	case Kubernetes:
		res, err = kubernetesFiles(pl)
	case Nomad:
		res, err = nomadFiles(pl)
	default:
		names := make([]string, 0, len(Targets()))
		for _, t := range Targets() {
			names = append(names, string(t))
		}
		return nil, fmt.Errorf("%w %q: use %s", ErrUnknownTarget, opts.Target, strings.Join(names, ", "))
	}
	if err != nil {
		return nil, err
	}
	if opts.Dockerfile {
		res.Files = append(res.Files, dockerfileFiles(opts.Image)...)
	}
	if opts.TLS {
		certs, err := certFiles(pl)
		if err != nil {
			return nil, err
		}
		res.Files = append(res.Files, certs...)
	}
	res.Warnings = append(res.Warnings, pl.warnings...)
	sort.SliceStable(res.Warnings, func(i, j int) bool {
		a, b := res.Warnings[i], res.Warnings[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	return res, nil
}

// WriteDir writes every file under dir, creating it and its subdirectories.
func (r *Result) WriteDir(dir string) error {
	for _, f := range r.Files {
		path := filepath.Join(dir, filepath.FromSlash(f.Name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		mode := f.Mode
		if mode == 0 {
			mode = 0o644
		}
		if err := writeFileAtomic(path, f.Data, mode); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	return nil
}

// writeFileAtomic writes data to a new file with mode, set before any
// byte is written, and renames it over path. Writing into an existing
// file instead would put a new key into a file that may have been
// readable (and held open by another user) before a chmod tightened it.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
