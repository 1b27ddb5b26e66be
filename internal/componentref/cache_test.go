package componentref

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// filePuller "pulls" by writing fixed content, as a registry would hand
// it out; the oci package tests the real registry protocol.
type filePuller struct {
	content, meta string
	digest        string
	err           error
	calls         int
}

func (p *filePuller) Pull(_ context.Context, image, pinned, dir string) (Record, error) {
	p.calls++
	if p.err != nil {
		return Record{}, p.err
	}
	if err := os.WriteFile(filepath.Join(dir, BinaryName), []byte(p.content), 0o600); err != nil {
		return Record{}, err
	}
	if p.meta != "" {
		if err := os.WriteFile(filepath.Join(dir, MetadataFile), []byte(p.meta), 0o600); err != nil {
			return Record{}, err
		}
	}
	sum := sha256.Sum256([]byte(p.content))
	return Record{ImageDigest: p.digest, BinaryInImage: "/component", BinarySHA256: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(len(p.content))}, nil
}

func mustParse(t *testing.T, s string) Ref {
	t.Helper()
	r, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestResolvePullsOnceThenUsesTheCache(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	p := &filePuller{content: "#!/bin/sh\necho hi\n", meta: `{"type":"processor","produces":["a.b"]}`, digest: "sha256:aa"}
	var notes []string
	rs := &Resolver{Cache: c, Puller: p, Registry: "127.0.0.1:1", Notify: func(s string) { notes = append(notes, s) }}
	r := mustParse(t, "acme/enrich@v1.2.0")
	in, err := rs.Resolve(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	wantBin := filepath.Join(c.Dir, "acme", "enrich", "v1.2.0", BinaryName)
	if in.Binary != wantBin || in.Record == nil || in.Record.Image != "127.0.0.1:1/acme/enrich:v1.2.0" || in.Record.Reference != "acme/enrich@v1.2.0" {
		t.Fatalf("installed %+v %+v, want binary %s", in, in.Record, wantBin)
	}
	if in.Metadata == nil || in.Metadata.Role() != "processor" || strings.Join(in.Metadata.Emits(), ",") != "a.b" {
		t.Fatalf("metadata %+v", in.Metadata)
	}
	if fi, err := os.Stat(wantBin); err != nil || (runtime.GOOS != "windows" && fi.Mode().Perm()&0o111 == 0) {
		t.Fatalf("binary %v, %v: want an executable file", fi, err)
	}
	if _, err := rs.Resolve(context.Background(), r); err != nil || p.calls != 1 {
		t.Fatalf("second resolve: %v, %d pulls; want the cached one", err, p.calls)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "pulling component acme/enrich@v1.2.0") {
		t.Fatalf("notes %q", notes)
	}
	ents, _ := os.ReadDir(c.Dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Fatalf("left behind %s", e.Name())
		}
	}
}

func TestResolveCorruptedBinary(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	p := &filePuller{content: "good binary", digest: "sha256:aa"}
	var notes []string
	rs := &Resolver{Cache: c, Puller: p, Notify: func(s string) { notes = append(notes, s) }}
	r := mustParse(t, "name@v1")
	in, err := rs.Resolve(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in.Binary, []byte("evil binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	var ce *CorruptError
	if _, err := c.Lookup(r); !errors.As(err, &ce) || ce.Path != in.Binary {
		t.Fatalf("Lookup after tampering: %v; want a CorruptError", err)
	}
	// Reachable registry: pulled again, and said so.
	in2, err := rs.Resolve(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(in2.Binary); string(b) != "good binary" || p.calls != 2 {
		t.Fatalf("after re-pull: %q, %d pulls", b, p.calls)
	}
	if len(notes) != 3 || !strings.Contains(notes[1], "was changed since it was pulled") {
		t.Fatalf("notes %q", notes)
	}
	// Unreachable registry: one line naming both.
	if err := os.WriteFile(in2.Binary, []byte("evil binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	p.err = errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
	_, err = rs.Resolve(context.Background(), r)
	if err == nil || strings.Contains(err.Error(), "\n") ||
		!strings.Contains(err.Error(), "was changed since it was pulled") || !strings.Contains(err.Error(), "connection refused") ||
		!strings.Contains(err.Error(), "remove "+in2.Binary) {
		t.Fatalf("error %v", err)
	}
}

func TestResolveNotInstalledErrorIsOneLine(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	rs := &Resolver{Cache: c, Puller: &filePuller{err: errors.New("Get \"http://127.0.0.1:1/v2/\":\n dial tcp 127.0.0.1:1: connect: connection refused")}, Registry: "127.0.0.1:1"}
	_, err := rs.Resolve(context.Background(), mustParse(t, "stellar-live-source@v1.0.0"))
	want := `component stellar-live-source@v1.0.0 is not installed and cannot be pulled from 127.0.0.1:1/withobsrvr/stellar-live-source:v1.0.0 (Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused): put the binary at ` +
		filepath.Join(c.Dir, "withobsrvr", "stellar-live-source", "v1.0.0", BinaryName) +
		`, or run "flowctl components pull stellar-live-source@v1.0.0" where the registry is reachable`
	if err == nil || err.Error() != want {
		t.Fatalf("error:\n%v\nwant:\n%s", err, want)
	}
	ents, _ := os.ReadDir(c.Dir)
	if len(ents) != 0 {
		t.Fatalf("a failed pull left %d entries in the cache", len(ents))
	}
}

func TestLookupHandPlacedAndLegacy(t *testing.T) {
	c := &Cache{Dir: t.TempDir(), Legacy: []string{t.TempDir()}}
	put := func(path string, mode os.FileMode) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("bin"), mode); err != nil {
			t.Fatal(err)
		}
	}
	// The earlier flowctl's place: NAME/VERSION for NAME@VERSION,
	// ORG/NAME/VERSION for ORG/NAME@VERSION.
	put(filepath.Join(c.Legacy[0], "old-source", "v1", BinaryName), 0o755)
	put(filepath.Join(c.Legacy[0], "acme", "old-sink", "v2", BinaryName), 0o755)
	put(c.BinaryPath(mustParse(t, "by-hand@v3")), 0o755)
	cases := []struct {
		ref, dir string
		err      error
	}{
		{ref: "old-source@v1", dir: filepath.Join(c.Legacy[0], "old-source", "v1")},
		{ref: "acme/old-sink@v2", dir: filepath.Join(c.Legacy[0], "acme", "old-sink", "v2")},
		{ref: "by-hand@v3", dir: filepath.Join(c.Dir, "withobsrvr", "by-hand", "v3")},
		{ref: "withobsrvr/by-hand@v3", dir: filepath.Join(c.Dir, "withobsrvr", "by-hand", "v3")},
		{ref: "old-source@v2", err: ErrNotInstalled},
		{ref: "ghcr.io/withobsrvr/old-source:v1", err: ErrNotInstalled}, // legacy places hold short references only
		{ref: "by-hand@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", err: ErrNotInstalled},
	}
	for _, tc := range cases {
		t.Run(tc.ref, func(t *testing.T) {
			in, err := c.Lookup(mustParse(t, tc.ref))
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Lookup: %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil || in.Dir != tc.dir || in.Record != nil {
				t.Fatalf("Lookup = %+v, %v; want dir %s, no record", in, err, tc.dir)
			}
		})
	}
	if runtime.GOOS != "windows" {
		put(c.BinaryPath(mustParse(t, "not-exec@v1")), 0o644)
		if _, err := c.Lookup(mustParse(t, "not-exec@v1")); err == nil || !strings.Contains(err.Error(), "chmod +x") {
			t.Fatalf("non-executable binary: %v", err)
		}
	}
	l, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range l {
		got = append(got, e.Repository+"@"+e.Version)
	}
	want := "acme/old-sink@v2 old-source@v1 withobsrvr/by-hand@v3"
	if runtime.GOOS != "windows" {
		want += " withobsrvr/not-exec@v1"
	}
	if strings.Join(got, " ") != want {
		t.Fatalf("List = %q, want %q", got, want)
	}
}

func TestLookupPinnedAndOtherRegistry(t *testing.T) {
	const d1 = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	const d2 = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	c := &Cache{Dir: t.TempDir()}
	rs := &Resolver{Cache: c, Puller: &filePuller{content: "x", digest: d1}, Registry: "reg.example:5000"}
	if _, err := rs.Pull(context.Background(), mustParse(t, "name@v1")); err != nil {
		t.Fatal(err)
	}
	for ref, installed := range map[string]bool{
		"name@v1":                                   true,
		"reg.example:5000/withobsrvr/name:v1":       true,
		"reg.example:5000/withobsrvr/name:v1@" + d1: true,
		"reg.example:5000/withobsrvr/name:v1@" + d2: false, // pinned to another image
		"ghcr.io/withobsrvr/name:v1":                false, // another registry's
	} {
		_, err := c.Lookup(mustParse(t, ref))
		if (err == nil) != installed {
			t.Errorf("Lookup(%s): %v, want installed=%v", ref, err, installed)
		}
	}
}

func TestInstallReplacesAndLeavesNoStaging(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	r := mustParse(t, "name@v1")
	p := &filePuller{content: "one", digest: "sha256:aa"}
	rs := &Resolver{Cache: c, Puller: p}
	if _, err := rs.Pull(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	p.content = "two"
	in, err := rs.Pull(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(in.Binary); string(b) != "two" {
		t.Fatalf("binary %q after the second pull", b)
	}
	// A pull that fails half-way leaves the installed one alone.
	p.err = errors.New("connection reset")
	if _, err := rs.Pull(context.Background(), r); err == nil {
		t.Fatal("want an error")
	}
	if b, _ := os.ReadFile(in.Binary); string(b) != "two" {
		t.Fatalf("binary %q after a failed pull", b)
	}
	var left []string
	_ = filepath.WalkDir(c.Dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".") {
			left = append(left, p)
		}
		return nil
	})
	if len(left) > 0 {
		t.Fatalf("left behind: %q", left)
	}
}

func TestDefaultCache(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(EnvCache, dir)
	c, err := DefaultCache()
	if err != nil || c.Dir != dir || len(c.Legacy) != 0 {
		t.Fatalf("with %s: %+v, %v", EnvCache, c, err)
	}
	t.Setenv(EnvCache, "")
	t.Setenv("XDG_CACHE_HOME", dir)
	t.Setenv("HOME", dir)
	c, err = DefaultCache()
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS == "linux" && (c.Dir != filepath.Join(dir, "flowctl", "components") || len(c.Legacy) != 1 || c.Legacy[0] != filepath.Join(dir, ".flowctl", "components")) {
		t.Fatalf("default: %+v", c)
	}
	t.Setenv(EnvRegistry, "")
	if RegistryFromEnv() != DefaultRegistry {
		t.Fatal(RegistryFromEnv())
	}
	t.Setenv(EnvRegistry, "127.0.0.1:5000/")
	if RegistryFromEnv() != "127.0.0.1:5000" {
		t.Fatal(RegistryFromEnv())
	}
}
