// Package dockertest helps tests run real containers without a registry:
// it builds a static Go program and wraps it in a FROM-scratch image
// through the Engine API's image build (the context is a tar made in
// memory). Only tests import it.
package dockertest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/moby/moby/client"
)

// Available returns nil when a Docker daemon answers (docker info), else
// a one-line reason to skip.
func Available() error {
	out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput()
	if err != nil {
		return fmt.Errorf("docker info failed (%v): %s", err, strings.TrimSpace(firstLine(string(out))))
	}
	return nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// Tag returns an image tag unique to this test binary:
// flowctl-test/NAME:PID-RANDOM.
func Tag(name string) string {
	var b [4]byte
	rand.Read(b[:])
	return fmt.Sprintf("flowctl-test/%s:%d-%s", name, os.Getpid(), hex.EncodeToString(b[:]))
}

// BuildStatic builds the Go package pkg (a path or import path, resolved
// in dir) as a static linux binary (CGO_ENABLED=0) at out.
func BuildStatic(dir, pkg, out string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// BuildScratchImage builds image tag FROM scratch holding the binary bin
// as /app (its entrypoint) and an /etc/nsswitch.conf that makes Go read
// /etc/hosts before asking DNS.
func BuildScratchImage(ctx context.Context, cli *client.Client, tag, bin string) error {
	data, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	files := []struct {
		name string
		mode int64
		data []byte
	}{
		{"Dockerfile", 0o644, []byte("FROM scratch\nCOPY nsswitch.conf /etc/nsswitch.conf\nCOPY app /app\nENTRYPOINT [\"/app\"]\n")},
		{"nsswitch.conf", 0o644, []byte("hosts: files dns\n")},
		{"app", 0o755, data},
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data))}); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	res, err := cli.ImageBuild(ctx, &buf, client.ImageBuildOptions{
		Tags: []string{tag}, Remove: true, ForceRemove: true, Labels: map[string]string{"flowctl.test": "true"},
	})
	if err != nil {
		return fmt.Errorf("build image %s: %w", tag, err)
	}
	defer res.Body.Close()
	// The build reports its errors in the JSON stream, not as a status.
	dec := json.NewDecoder(res.Body)
	var log strings.Builder
	for {
		var m struct {
			Stream string `json:"stream"`
			Error  string `json:"error"`
		}
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fmt.Errorf("build image %s: %w", tag, err)
		}
		log.WriteString(m.Stream)
		if m.Error != "" {
			return fmt.Errorf("build image %s: %s\n%s", tag, m.Error, log.String())
		}
	}
	return nil
}

// RemoveImage removes image tag (and its untagged layers).
func RemoveImage(ctx context.Context, cli *client.Client, tag string) error {
	_, err := cli.ImageRemove(ctx, tag, client.ImageRemoveOptions{Force: true, PruneChildren: true})
	return err
}

// RepoRoot returns the module's root directory, found from dir upwards.
func RepoRoot(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod above %s", dir)
		}
	}
}
