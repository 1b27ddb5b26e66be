package oci

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/flowctl/flowctl/internal/componentref"
	"github.com/flowctl/flowctl/internal/componentref/ocitest"
)

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func TestPull(t *testing.T) {
	reg := ocitest.Serve(t)
	bin := []byte("the component binary")
	old := []byte("an older binary")
	meta := []byte(`{"name":"enrich","type":"processor","produces":["enriched"]}`)
	F := func(p string, b []byte) ocitest.File { return ocitest.File{Path: p, Data: b} }
	other := "linux"
	if runtime.GOOS == "linux" {
		other = "darwin"
	}
	cases := []struct {
		name     string
		img      func() v1.Image
		pinned   bool
		wantIn   string
		wantMeta string
		err      string
	}{
		{name: "root", img: func() v1.Image {
			return ocitest.Image(t, "", "", ocitest.Layer(t, F("component", bin), F("metadata.json", meta)))
		},
			wantIn: "/component", wantMeta: string(meta)},
		{name: "bin beside its metadata", img: func() v1.Image {
			return ocitest.Image(t, "", "", ocitest.Layer(t, F("metadata.json", []byte(`{"name":"root"}`)), F("bin/component", bin), F("bin/metadata.json", meta)))
		}, wantIn: "/bin/component", wantMeta: string(meta)},
		{name: "app without metadata", img: func() v1.Image { return ocitest.Image(t, "", "", ocitest.Layer(t, F("./app/component", bin))) },
			wantIn: "/app/component"},
		{name: "topmost layer wins", img: func() v1.Image {
			return ocitest.Image(t, "", "", ocitest.Layer(t, F("component", old)), ocitest.Layer(t, F("component", bin)))
		}, wantIn: "/component"},
		{name: "whiteout hides the lower file", img: func() v1.Image {
			return ocitest.Image(t, "", "", ocitest.Layer(t, F("component", old), F("app/component", bin)), ocitest.Layer(t, F(".wh.component", nil)))
		}, wantIn: "/app/component"},
		{name: "opaque directory hides the lower file", img: func() v1.Image {
			return ocitest.Image(t, "", "", ocitest.Layer(t, F("bin/component", old), F("app/component", bin)), ocitest.Layer(t, F("bin/.wh..wh..opq", nil)))
		}, wantIn: "/app/component"},
		{name: "pinned digest", img: func() v1.Image { return ocitest.Image(t, "", "", ocitest.Layer(t, F("component", bin))) }, pinned: true, wantIn: "/component"},
		{name: "no binary", img: func() v1.Image { return ocitest.Image(t, "", "", ocitest.Layer(t, F("usr/bin/component", bin))) },
			err: "holds no component binary at /component, /bin/component, /app/component"},
		{name: "symlink", img: func() v1.Image {
			return ocitest.Image(t, "", "", ocitest.Layer(t, ocitest.File{Path: "component", Link: "/usr/bin/x"}))
		}, err: "/component is a link to /usr/bin/x"},
		{name: "other platform", img: func() v1.Image { return ocitest.Image(t, other, "amd64", ocitest.Layer(t, F("component", bin))) },
			err: "is built for " + other + "/amd64"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			image := fmt.Sprintf("%s/acme/c%d:v1", reg.Host, i)
			digest := reg.Push(t, image, tc.img())
			pinned := ""
			if tc.pinned {
				pinned = digest
				image += "@" + digest
			}
			dir := t.TempDir()
			rec, err := Puller{}.Pull(context.Background(), image, pinned, dir)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Pull: %v; want an error with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(dir, componentref.BinaryName))
			if err != nil || !bytes.Equal(got, bin) {
				t.Fatalf("binary %q, %v; want %q", got, err, bin)
			}
			if rec.ImageDigest != digest || rec.BinaryInImage != tc.wantIn || rec.BinarySHA256 != sum(bin) || rec.Size != int64(len(bin)) {
				t.Fatalf("record %+v; want digest %s, binary at %s", rec, digest, tc.wantIn)
			}
			m, err := os.ReadFile(filepath.Join(dir, componentref.MetadataFile))
			if tc.wantMeta == "" {
				if err == nil {
					t.Fatalf("metadata.json %q written; the image has none", m)
				}
			} else if string(m) != tc.wantMeta {
				t.Fatalf("metadata.json %q, %v; want %q", m, err, tc.wantMeta)
			}
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), ".") {
					t.Fatalf("left %s in the staging directory", e.Name())
				}
			}
		})
	}
}

// TestPullVerifiesLayerDigests serves a layer whose bytes were changed in
// transit: the pull fails and says which layer.
func TestPullVerifiesLayerDigests(t *testing.T) {
	reg := ocitest.Serve(t)
	img := ocitest.Image(t, "", "", ocitest.Layer(t, ocitest.File{Path: "component", Data: bytes.Repeat([]byte("binary "), 1000)}))
	image := reg.Host + "/acme/tampered:v1"
	reg.Push(t, image, img)
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	reg.Middleware = func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+ld.String()) {
			rec := &capture{header: http.Header{}}
			next.ServeHTTP(rec, r)
			b := rec.body.Bytes()
			b[len(b)/2] ^= 0xff
			for k, v := range rec.header {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.code)
			_, _ = w.Write(b)
			return
		}
		next.ServeHTTP(w, r)
	}
	_, err := Puller{}.Pull(context.Background(), image, "", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), ld.String()) {
		t.Fatalf("Pull of a changed layer: %v; want an error naming layer %s", err, ld)
	}
}

func TestPullPinnedDigestMismatch(t *testing.T) {
	reg := ocitest.Serve(t)
	image := reg.Host + "/acme/pinned:v1"
	reg.Push(t, image, ocitest.Image(t, "", "", ocitest.Layer(t, ocitest.File{Path: "component", Data: []byte("x")})))
	other := "sha256:" + strings.Repeat("0", 64)
	_, err := Puller{}.Pull(context.Background(), image+"@"+other, other, t.TempDir())
	if err == nil {
		t.Fatal("pulled an image whose digest is not the pinned one")
	}
}

// TestPullUnreachable is the no-network case: a closed loopback port.
func TestPullUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := l.Addr().String()
	l.Close()
	c := &componentref.Cache{Dir: t.TempDir()}
	rs := &componentref.Resolver{Cache: c, Puller: Puller{}, Registry: host}
	r, _ := componentref.Parse("stellar-live-source@v1.0.0")
	_, err = rs.Resolve(context.Background(), r)
	if err == nil {
		t.Fatal("resolved without a registry")
	}
	msg := err.Error()
	for _, want := range []string{
		"component stellar-live-source@v1.0.0 is not installed and cannot be pulled from " + host + "/withobsrvr/stellar-live-source:v1.0.0 (",
		"connect: connection refused",
		"): put the binary at " + c.BinaryPath(r) + `, or run "flowctl components pull stellar-live-source@v1.0.0" where the registry is reachable`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q\nlacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("error has more than one line: %q", msg)
	}
}

// capture records a response to change it.
type capture struct {
	header http.Header
	body   bytes.Buffer
	code   int
}

func (c *capture) Header() http.Header { return c.header }
func (c *capture) Write(b []byte) (int, error) {
	if c.code == 0 {
		c.code = http.StatusOK
	}
	return c.body.Write(b)
}
func (c *capture) WriteHeader(code int) { c.code = code }

var _ io.Writer = (*capture)(nil)
