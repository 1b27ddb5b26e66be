package componentref

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

// Environment variables that configure where components come from.
const (
	// EnvCache replaces the cache directory; when set, no other place is
	// looked at.
	EnvCache = "FLOWCTL_COMPONENT_CACHE"
	// EnvRegistry is the registry (HOST[:PORT][/PREFIX]) of references
	// that name none [DefaultRegistry].
	EnvRegistry = "FLOWCTL_COMPONENT_REGISTRY"
	// DefaultRegistry is where the earlier flowctl pulled
	// NAME@VERSION from: docker.io/withobsrvr/NAME:VERSION.
	DefaultRegistry = "docker.io"
)

// Files of one installed component, in its directory.
const (
	// RecordFile records where the binary came from and its digests.
	RecordFile = "install.json"
	// MetadataFile is the image's metadata.json, copied when it has one.
	MetadataFile = "metadata.json"
)

// BinaryName is the file name of a component's binary in the cache:
// "component" ("component.exe" on Windows, which runs nothing without an
// extension).
var BinaryName = func() string {
	if runtime.GOOS == "windows" {
		return "component.exe"
	}
	return "component"
}()

// RegistryFromEnv returns FLOWCTL_COMPONENT_REGISTRY, or DefaultRegistry.
func RegistryFromEnv() string {
	if r := strings.TrimSpace(os.Getenv(EnvRegistry)); r != "" {
		return strings.TrimSuffix(r, "/")
	}
	return DefaultRegistry
}

// Record is install.json: what was pulled, and the digest of the binary
// written, checked again before every use.
type Record struct {
	// Reference is the reference as given to pull.
	Reference string `json:"reference"`
	// Image is the image pulled, registry included.
	Image string `json:"image"`
	// ImageDigest is the digest of the manifest pulled (of the index
	// when the registry served one).
	ImageDigest string `json:"image_digest"`
	// BinaryInImage is where the binary was found: /component,
	// /bin/component or /app/component.
	BinaryInImage string `json:"binary_in_image"`
	// BinarySHA256 is "sha256:HEX" of the binary as written.
	BinarySHA256 string `json:"binary_sha256"`
	// Size is the binary's size in bytes.
	Size     int64     `json:"size"`
	PulledAt time.Time `json:"pulled_at"`
}

// Installed is a component binary found on this machine.
type Installed struct {
	// Repository and Version say which component it is
	// ("withobsrvr/stellar-live-source", "v1.0.0").
	Repository string
	Version    string
	// Dir holds Binary, and install.json and metadata.json when present.
	Dir    string
	Binary string
	Size   int64
	// Record is nil for a binary put in place by hand (no install.json).
	Record *Record
	// Metadata is nil when there is no metadata.json; MetadataErr says
	// why one could not be read.
	Metadata    *Metadata
	MetadataErr error
}

// CorruptError is a cached binary whose content is not what was pulled.
type CorruptError struct {
	Path     string
	Recorded string
	Actual   string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("%s was changed since it was pulled (recorded %s, now %s)", e.Path, e.Recorded, e.Actual)
}

// ErrNotInstalled is Cache.Lookup's answer for a reference it does not
// hold.
var ErrNotInstalled = errors.New("component not installed")

// Cache is the directory of installed components:
// DIR/ORG/NAME/VERSION/{component, install.json, metadata.json}. A
// version pinned only by digest is kept in a directory named
// sha256-HEX.
type Cache struct {
	// Dir is where pulls install to and looked at first.
	Dir string
	// Legacy are read-only places of the earlier flowctl
	// (~/.flowctl/components/NAME/VERSION/component), looked at after
	// Dir for references without a registry host.
	Legacy []string
}

// DefaultCache is FLOWCTL_COMPONENT_CACHE alone when set, else the user's
// cache directory ($XDG_CACHE_HOME/flowctl/components, ~/.cache/… on
// Linux, ~/Library/Caches/… on macOS, %LocalAppData%\… on Windows) with
// the earlier flowctl's ~/.flowctl/components looked at after it.
func DefaultCache() (*Cache, error) {
	if d := os.Getenv(EnvCache); d != "" {
		abs, err := filepath.Abs(d)
		if err != nil {
			return nil, fmt.Errorf("%s=%s: %w", EnvCache, d, err)
		}
		return &Cache{Dir: abs}, nil
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return nil, fmt.Errorf("find the component cache: %w; set %s to a directory", err, EnvCache)
	}
	c := &Cache{Dir: filepath.Join(base, "flowctl", "components")}
	if home, err := os.UserHomeDir(); err == nil {
		c.Legacy = []string{filepath.Join(home, ".flowctl", "components")}
	}
	return c, nil
}

// versionDir is the directory name of r's version.
func versionDir(r Ref) string {
	if r.Tag != "" {
		return r.Tag
	}
	return strings.Replace(r.Digest, ":", "-", 1)
}

// DirOf returns the directory r is installed to.
func (c *Cache) DirOf(r Ref) string {
	return filepath.Join(c.Dir, filepath.FromSlash(r.Repository), versionDir(r))
}

// BinaryPath returns where r's binary is installed (or is to be put by
// hand).
func (c *Cache) BinaryPath(r Ref) string { return filepath.Join(c.DirOf(r), BinaryName) }

// Lookup finds r: in Dir, then (for a reference without a registry host
// and a tag) in the earlier flowctl's places. A pulled binary is checked
// against the digest recorded when it was pulled (*CorruptError when it
// differs). A hand-placed one (no install.json) is taken as it is, unless
// r pins a digest, which only a pull can satisfy. ErrNotInstalled when
// none is found.
func (c *Cache) Lookup(r Ref) (*Installed, error) {
	dirs := []string{c.DirOf(r)}
	if r.Registry == "" && r.Tag != "" {
		for _, l := range c.Legacy {
			short := r.Repository
			if !strings.Contains(r.Raw, "/") {
				short = r.Name() // NAME@VERSION lived at NAME/VERSION
			}
			dirs = append(dirs, filepath.Join(l, filepath.FromSlash(short), r.Tag))
		}
	}
	for _, dir := range dirs {
		in, err := c.open(dir, r.Repository, r.Version())
		if errors.Is(err, ErrNotInstalled) {
			continue
		}
		if err != nil {
			return nil, err
		}
		switch {
		case r.Digest != "" && (in.Record == nil || in.Record.ImageDigest != r.Digest):
			continue // pinned to another image
		case r.Registry != "" && in.Record != nil && registryOf(in.Record.Image) != r.Registry:
			continue // the same name from another registry
		}
		return in, nil
	}
	return nil, ErrNotInstalled
}

// registryOf returns the host of an image reference.
func registryOf(image string) string {
	host, _, _ := strings.Cut(image, "/")
	return host
}

// open reads the installed component in dir and verifies its binary.
func (c *Cache) open(dir, repo, version string) (*Installed, error) {
	bin := filepath.Join(dir, BinaryName)
	fi, err := os.Stat(bin)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotInstalled
	}
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file; put the component's binary there", bin)
	}
	in := &Installed{Repository: repo, Version: version, Dir: dir, Binary: bin, Size: fi.Size()}
	b, err := os.ReadFile(filepath.Join(dir, RecordFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Put there by hand: nothing to check it against.
	case err != nil:
		return nil, err
	default:
		var rec Record
		if err := json.Unmarshal(b, &rec); err != nil {
			return nil, fmt.Errorf("%s: %w; remove %s and pull it again", filepath.Join(dir, RecordFile), err, dir)
		}
		in.Record = &rec
		sum, err := fileSHA256(bin)
		if err != nil {
			return nil, err
		}
		if sum != rec.BinarySHA256 {
			return nil, &CorruptError{Path: bin, Recorded: rec.BinarySHA256, Actual: sum}
		}
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o111 == 0 {
		return nil, fmt.Errorf("%s is not executable; run chmod +x %s", bin, bin)
	}
	in.Metadata, in.MetadataErr = loadMetadata(filepath.Join(dir, MetadataFile))
	return in, nil
}

// fileSHA256 returns "sha256:HEX" of the file at path.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// Install installs r: fill writes the binary (as BinaryName) and
// metadata.json into an empty staging directory and returns the record;
// Install checks the binary against it, writes install.json, makes the
// binary executable and renames the directory into place, replacing what
// was there. A pull killed half-way leaves only a staging directory
// (.pull-*, ignored and removed by a later Install), never a half binary.
func (c *Cache) Install(r Ref, fill func(dir string) (Record, error)) (*Installed, error) {
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("create the component cache: %w", err)
	}
	c.removeStale()
	staging, err := os.MkdirTemp(c.Dir, ".pull-")
	if err != nil {
		return nil, fmt.Errorf("create the component cache: %w", err)
	}
	defer os.RemoveAll(staging) // a no-op once renamed
	rec, err := fill(staging)
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(staging, BinaryName)
	sum, err := fileSHA256(bin)
	if err != nil {
		return nil, err
	}
	if sum != rec.BinarySHA256 {
		return nil, fmt.Errorf("the binary written for %s has digest %s, not the %s read", r, sum, rec.BinarySHA256)
	}
	if err := os.Chmod(bin, 0o755); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeSynced(filepath.Join(staging, RecordFile), append(b, '\n')); err != nil {
		return nil, err
	}
	final := c.DirOf(r)
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return nil, fmt.Errorf("create the component cache: %w", err)
	}
	// A directory cannot be renamed over a non-empty one: move the old one
	// aside first, under a name Lookup and List skip.
	var old string
	if _, err := os.Stat(final); err == nil {
		old = filepath.Join(filepath.Dir(final), "."+filepath.Base(final)+".old-"+randomSuffix())
		if err := os.Rename(final, old); err != nil {
			return nil, fmt.Errorf("replace %s: %w", final, err)
		}
	}
	if err := os.Rename(staging, final); err != nil {
		if old != "" {
			_ = os.Rename(old, final)
		}
		return nil, fmt.Errorf("install %s: %w", final, err)
	}
	if old != "" {
		_ = os.RemoveAll(old)
	}
	syncDir(filepath.Dir(final))
	return c.open(final, r.Repository, r.Version())
}

// removeStale removes staging directories of pulls that died more than an
// hour ago.
func (c *Cache) removeStale() {
	ents, err := os.ReadDir(c.Dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), ".pull-") {
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > time.Hour {
			_ = os.RemoveAll(filepath.Join(c.Dir, e.Name()))
		}
	}
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// syncDir makes a rename in dir durable where the platform allows it.
func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		_ = f.Sync() // not supported on every platform; best effort
		f.Close()
	}
}

func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Listed is one entry of List. Err, when not nil, is the entry's problem
// (e.g. a binary changed since it was pulled); the entry is still listed.
type Listed struct {
	Installed
	// Legacy is true for an entry of the earlier flowctl's cache.
	Legacy bool
	Err    error
}

// List returns every component installed in Dir and the legacy places,
// sorted by repository and version.
func (c *Cache) List() ([]Listed, error) {
	var out []Listed
	roots := append([]string{c.Dir}, c.Legacy...)
	for i, root := range roots {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if path == root && errors.Is(err, fs.ErrNotExist) {
					return fs.SkipDir
				}
				return err
			}
			if d.IsDir() {
				if path != root && strings.HasPrefix(d.Name(), ".") {
					return fs.SkipDir
				}
				return nil
			}
			if d.Name() != BinaryName {
				return nil
			}
			dir := filepath.Dir(path)
			rel, err := filepath.Rel(root, dir)
			if err != nil {
				return nil
			}
			parts := strings.Split(filepath.ToSlash(rel), "/")
			if len(parts) < 2 {
				return nil
			}
			version := parts[len(parts)-1]
			if h, ok := strings.CutPrefix(version, "sha256-"); ok {
				version = "sha256:" + h
			}
			repo := strings.Join(parts[:len(parts)-1], "/")
			l := Listed{Legacy: i > 0}
			in, err := c.open(dir, repo, version)
			if err != nil {
				l.Err = err
				l.Installed = Installed{Repository: repo, Version: version, Dir: dir, Binary: path}
				if fi, serr := os.Stat(path); serr == nil {
					l.Size = fi.Size()
				}
				if b, rerr := os.ReadFile(filepath.Join(dir, RecordFile)); rerr == nil {
					var rec Record
					if json.Unmarshal(b, &rec) == nil {
						l.Record = &rec
					}
				}
			} else {
				l.Installed = *in
			}
			out = append(out, l)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", root, err)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Repository != out[j].Repository {
			return out[i].Repository < out[j].Repository
		}
		return out[i].Version < out[j].Version
	})
	return out, nil
}
