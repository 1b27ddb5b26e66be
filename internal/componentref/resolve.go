package componentref

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Puller fetches a component's image from a registry.
type Puller interface {
	// Pull fetches image and writes the binary it holds at /component,
	// /bin/component or /app/component to dir/BinaryName, and the
	// metadata.json beside it, if any, to dir/metadata.json. dir is empty
	// and is removed by the caller on error. pinned, when not "", is the
	// manifest digest the image must have. It blocks until done or ctx
	// ends; the record it returns says what was written.
	Pull(ctx context.Context, image, pinned, dir string) (Record, error)
}

// Resolver turns references into installed binaries: from the cache, else
// pulled and installed.
type Resolver struct {
	Cache  *Cache
	Puller Puller
	// Registry is where references without a host are pulled from
	// [DefaultRegistry].
	Registry string
	// Notify, when set, is told of pulls and of a cached binary found
	// changed (one line, no trailing newline).
	Notify func(msg string)
}

// NotInstalledError is a reference that is neither installed nor could
// be pulled.
type NotInstalledError struct {
	Ref   Ref
	Image string
	// Binary is where to put the binary by hand.
	Binary string
	// Corrupt, when not nil, is the cached binary that was found changed.
	Corrupt *CorruptError
	Cause   error
}

func (e *NotInstalledError) Error() string {
	cause := oneLine(e.Cause)
	if e.Corrupt != nil {
		return fmt.Sprintf("component %s: %v, and pulling it again from %s failed (%s): remove %s and run \"flowctl components pull %s\" where the registry is reachable",
			e.Ref, e.Corrupt, e.Image, cause, e.Corrupt.Path, e.Ref)
	}
	return fmt.Sprintf("component %s is not installed and cannot be pulled from %s (%s): put the binary at %s, or run \"flowctl components pull %s\" where the registry is reachable",
		e.Ref, e.Image, cause, e.Binary, e.Ref)
}

func (e *NotInstalledError) Unwrap() error { return e.Cause }

// oneLine keeps an error on one line.
func oneLine(err error) string {
	if err == nil {
		return "no puller"
	}
	return strings.Join(strings.Fields(err.Error()), " ")
}

func (rs *Resolver) registry() string {
	if rs.Registry != "" {
		return rs.Registry
	}
	return DefaultRegistry
}

func (rs *Resolver) notify(format string, args ...any) {
	if rs.Notify != nil {
		rs.Notify(fmt.Sprintf(format, args...))
	}
}

// Resolve returns r's installed binary: the cached one when it is there
// and unchanged, else a fresh pull. A cached binary that changed since it
// was pulled is pulled again (and said so through Notify); when that pull
// fails too the error names both.
func (rs *Resolver) Resolve(ctx context.Context, r Ref) (*Installed, error) {
	in, err := rs.Cache.Lookup(r)
	if err == nil {
		return in, nil
	}
	var corrupt *CorruptError
	switch {
	case errors.As(err, &corrupt):
		rs.notify("component %s: %v; pulling it again", r, corrupt)
	case !errors.Is(err, ErrNotInstalled):
		return nil, fmt.Errorf("component %s: %w", r, err)
	}
	in, err = rs.Pull(ctx, r)
	if err != nil {
		var ni *NotInstalledError
		if errors.As(err, &ni) {
			ni.Corrupt = corrupt
		}
		return nil, err
	}
	return in, nil
}

// Pull pulls r from its registry and installs it, replacing what the
// cache held. A failed pull is a *NotInstalledError.
func (rs *Resolver) Pull(ctx context.Context, r Ref) (*Installed, error) {
	image := r.Image(rs.registry())
	fail := func(err error) error {
		return &NotInstalledError{Ref: r, Image: image, Binary: rs.Cache.BinaryPath(r), Cause: err}
	}
	if rs.Puller == nil {
		return nil, fail(nil)
	}
	rs.notify("pulling component %s from %s", r, image)
	in, err := rs.Cache.Install(r, func(dir string) (Record, error) {
		rec, err := rs.Puller.Pull(ctx, image, r.Digest, dir)
		rec.Reference, rec.Image = r.Raw, image
		return rec, err
	})
	if err != nil {
		return nil, fail(err)
	}
	return in, nil
}
