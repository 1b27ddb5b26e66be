package oci

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/flowctl/flowctl/internal/componentref"
)

// BinaryPaths are where an image holds its component binary, in order of
// preference (the earlier flowctl's convention).
var BinaryPaths = []string{"component", "bin/component", "app/component"}

// Puller pulls images from a registry. The zero value uses the docker
// credentials of the user (~/.docker/config.json and its helpers) and the
// platform flowctl runs on.
type Puller struct {
	// Options are added to every remote call (tests use them for a
	// transport).
	Options []remote.Option
}

// Pull implements componentref.Puller: it fetches image's manifest (the
// entry for this platform when the registry serves an index), then reads
// every layer, topmost first, verifying each layer's digest as it reads.
// The topmost regular file at one of BinaryPaths wins, a whiteout in an
// upper layer hides a lower layer's file; metadata.json is taken from
// beside the chosen binary, else from /.
func (p Puller) Pull(ctx context.Context, image, pinned, dir string) (componentref.Record, error) {
	var rec componentref.Record
	ref, err := name.ParseReference(image)
	if err != nil {
		return rec, fmt.Errorf("image reference %q: %w", image, err)
	}
	opts := append([]remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(authn.DefaultKeychain),
		remote.WithPlatform(v1.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}),
	}, p.Options...)
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return rec, err
	}
	// remote.Get checks the manifest against a digest in the reference;
	// this says so in our words when the registry lied about it.
	if pinned != "" && desc.Digest.String() != pinned {
		return rec, fmt.Errorf("%s has digest %s, not the pinned %s", image, desc.Digest, pinned)
	}
	rec.ImageDigest = desc.Digest.String()
	img, err := desc.Image()
	if err != nil {
		return rec, err
	}
	if cf, err := img.ConfigFile(); err == nil && cf.OS != "" && (cf.OS != runtime.GOOS || (cf.Architecture != "" && cf.Architecture != runtime.GOARCH)) {
		return rec, fmt.Errorf("%s is built for %s/%s, and this machine is %s/%s; publish an image (or an index entry) for this platform", image, cf.OS, cf.Architecture, runtime.GOOS, runtime.GOARCH)
	}
	layers, err := img.Layers()
	if err != nil {
		return rec, err
	}
	x := &extractor{dir: dir, found: map[string]*found{}, hidden: map[string]bool{}}
	for i := len(layers) - 1; i >= 0; i-- {
		if err := x.layer(layers[i]); err != nil {
			d, _ := layers[i].Digest()
			return rec, fmt.Errorf("layer %s of %s: %w", d, image, err)
		}
	}
	bin := ""
	for _, p := range BinaryPaths {
		if x.found[p] != nil {
			bin = p
			break
		}
	}
	if bin == "" {
		return rec, fmt.Errorf("%s holds no component binary at /%s", image, strings.Join(BinaryPaths, ", /"))
	}
	f := x.found[bin]
	if err := os.Rename(f.tmp, filepath.Join(dir, componentref.BinaryName)); err != nil {
		return rec, err
	}
	meta := x.found[path.Join(path.Dir(bin), componentref.MetadataFile)]
	if meta == nil {
		meta = x.found[componentref.MetadataFile]
	}
	if meta != nil {
		if err := os.Rename(meta.tmp, filepath.Join(dir, componentref.MetadataFile)); err != nil {
			return rec, err
		}
	}
	for _, o := range x.found {
		_ = os.Remove(o.tmp) // the candidates not chosen
	}
	rec.BinaryInImage = "/" + bin
	rec.BinarySHA256 = f.sum
	rec.Size = f.size
	return rec, nil
}

// found is a wanted file written to a temporary file of the staging
// directory.
type found struct {
	tmp  string
	sum  string
	size int64
}

// extractor takes the wanted files from layers handed to it topmost
// first.
type extractor struct {
	dir   string
	found map[string]*found
	// hidden are paths (and directories, with a trailing /) an upper
	// layer deleted or made opaque.
	hidden map[string]bool
	n      int
}

// wanted reports whether p (clean, relative) is a file we extract.
func wanted(p string) bool {
	for _, b := range BinaryPaths {
		if p == b || p == path.Join(path.Dir(b), componentref.MetadataFile) {
			return true
		}
	}
	return false
}

func (x *extractor) isHidden(p string) bool {
	if x.hidden[p] {
		return true
	}
	for d := path.Dir(p); d != "."; d = path.Dir(d) {
		if x.hidden[d+"/"] {
			return true
		}
	}
	return x.hidden["./"]
}

// layer reads one layer to its end, so that its digest is verified, and
// extracts the wanted files no upper layer hides or already provided.
func (x *extractor) layer(l v1.Layer) (err error) {
	rc, err := l.Uncompressed()
	if err != nil {
		return err
	}
	defer func() {
		if cerr := rc.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	// Whiteouts hide files of the layers below, not of this one.
	hides := map[string]bool{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		p := path.Clean(strings.TrimPrefix(h.Name, "/"))
		dir, base := path.Split(p)
		switch {
		case base == ".wh..wh..opq":
			if dir == "" {
				dir = "./"
			}
			hides[dir] = true
			continue
		case strings.HasPrefix(base, ".wh."):
			hides[dir+strings.TrimPrefix(base, ".wh.")] = true
			hides[dir+strings.TrimPrefix(base, ".wh.")+"/"] = true
			continue
		}
		if !wanted(p) || x.found[p] != nil || x.isHidden(p) {
			continue
		}
		switch h.Typeflag {
		case tar.TypeReg:
			f, err := x.write(tr)
			if err != nil {
				return err
			}
			x.found[p] = f
		case tar.TypeSymlink, tar.TypeLink:
			return fmt.Errorf("/%s is a link to %s; put the binary itself there", p, h.Linkname)
		default:
			// A directory or device at that path: it hides lower layers'
			// file, and is not one.
			hides[p] = true
		}
	}
	// Read what follows the tar's end too: the digest is checked at EOF.
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return err
	}
	for k := range hides {
		x.hidden[k] = true
	}
	return nil
}

// write copies r to a new file of the staging directory, hashing it.
func (x *extractor) write(r io.Reader) (*found, error) {
	x.n++
	tmp := filepath.Join(x.dir, fmt.Sprintf(".extract-%d", x.n))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return &found{tmp: tmp, sum: "sha256:" + hex.EncodeToString(h.Sum(nil)), size: n}, nil
}

var _ componentref.Puller = Puller{}
