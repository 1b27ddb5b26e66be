// Package wasmtest builds the Wasm modules that tests run: Go programs
// with GOOS=wasip1 GOARCH=wasm -buildmode=c-shared, and Rust sources with
// a rustc that has the wasm32-wasip1 (or, before Rust 1.78, wasm32-wasi)
// standard library. Builds are cached by a hash of their inputs, so a
// second run of a test takes no build. Only tests import it; flowctl
// never links it (internal/archtest).
package wasmtest

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
)

var buildMu sync.Mutex // one build at a time: the machine is small

// buildTemp is where a build of out writes: a directory of its own in
// the cache (removed when t ends), so that test processes building the
// same module at once (go test runs packages in parallel) do not share
// a temporary file, nor rustc's object files, which it puts next to its
// output. The finished module is then renamed to out, atomically.
func buildTemp(t testing.TB, out string) string {
	d, err := os.MkdirTemp(filepath.Dir(out), "build-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return filepath.Join(d, filepath.Base(out))
}

// cacheDir is where built modules are kept between test runs.
func cacheDir(t testing.TB) string {
	d := filepath.Join(os.TempDir(), "flowctl-wasmtest-cache")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// hashTree adds every .go, .rs, go.mod and go.sum file under the dirs to h.
func hashTree(t testing.TB, h interface{ Write([]byte) (int, error) }, dirs ...string) {
	for _, dir := range dirs {
		var files []string
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && (strings.HasSuffix(p, ".go") || strings.HasSuffix(p, ".rs") || d.Name() == "go.mod" || d.Name() == "go.sum") {
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(files)
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			h.Write([]byte(f + "\x00"))
			h.Write(b)
		}
	}
}

// moduleRoot is the flowctl module's root directory (this file is in
// internal/wasmtest).
func moduleRoot(t testing.TB) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("wasmtest: cannot find its own source")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// BuildGo builds the Go main package in dir (a path relative to the
// flowctl module root, such as "examples/wasm/usdmap") into a reactor
// module and returns the .wasm's path.
func BuildGo(t testing.TB, dir string) string {
	t.Helper()
	root := moduleRoot(t)
	goCmd := filepath.Join(runtime.GOROOT(), "bin", "go")
	h := sha256.New()
	h.Write([]byte(runtime.Version() + "\x00" + dir + "\x00"))
	hashTree(t, h, filepath.Join(root, dir), filepath.Join(root, "pkg", "wasmguest"))
	out := filepath.Join(cacheDir(t), "go-"+hex.EncodeToString(h.Sum(nil))[:24]+".wasm")
	buildMu.Lock()
	defer buildMu.Unlock()
	if _, err := os.Stat(out); err == nil {
		return out
	}
	tmp := buildTemp(t, out)
	cmd := exec.Command(goCmd, "build", "-buildmode=c-shared", "-o", tmp, "./"+filepath.ToSlash(dir))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("wasmtest: build %s: %v\n%s", dir, err, b)
	}
	if err := os.Rename(tmp, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// rustTarget finds a rustc that builds WASI preview 1 modules: the one on
// PATH (rustup, wasm32-wasip1) or Debian's /usr/bin/rustc with
// libstd-rust-dev-wasm32 (Rust 1.63, wasm32-wasi). It returns "" when
// there is none.
func rustTarget() (rustc, target string) {
	probe := filepath.Join(os.TempDir(), "flowctl-wasmtest-probe.rs")
	_ = os.WriteFile(probe, []byte("#[no_mangle]\npub extern \"C\" fn f() -> i32 { 1 }\n"), 0o644)
	for _, c := range []struct{ rustc, target string }{
		{"rustc", "wasm32-wasip1"},
		{"/usr/bin/rustc", "wasm32-wasip1"},
		{"/usr/bin/rustc", "wasm32-wasi"},
	} {
		p, err := exec.LookPath(c.rustc)
		if err != nil {
			continue
		}
		out := probe + "." + c.target + ".wasm"
		if exec.Command(p, "--target", c.target, "--crate-type", "cdylib", "-o", out, probe).Run() == nil {
			os.Remove(out)
			return p, c.target
		}
	}
	return "", ""
}

// BuildRust builds the Rust source file src (relative to the flowctl
// module root) as a cdylib for WASI preview 1 and returns the .wasm's
// path. Without a rustc that has that target it skips the test, or fails
// it under CI=true (.ci/run installs Debian's rustc and
// libstd-rust-dev-wasm32).
func BuildRust(t testing.TB, src string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	rustc, target := rustTarget()
	if rustc == "" {
		msg := "no rustc with the wasm32-wasip1 or wasm32-wasi target (rustup target add wasm32-wasip1, or apt-get install rustc libstd-rust-dev-wasm32)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	root := moduleRoot(t)
	h := sha256.New()
	ver, _ := exec.Command(rustc, "--version").Output()
	h.Write([]byte(string(ver) + target + "\x00"))
	hashTree(t, h, filepath.Join(root, src))
	out := filepath.Join(cacheDir(t), "rust-"+hex.EncodeToString(h.Sum(nil))[:24]+".wasm")
	if _, err := os.Stat(out); err == nil {
		return out
	}
	tmp := buildTemp(t, out)
	cmd := exec.Command(rustc, "--edition", "2021", "--target", target, "--crate-type", "cdylib", "-O", "-o", tmp, filepath.Join(root, src))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("wasmtest: build %s with %s --target %s: %v\n%s", src, rustc, target, err, b)
	}
	if err := os.Rename(tmp, out); err != nil {
		t.Fatal(err)
	}
	return out
}
