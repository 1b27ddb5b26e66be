package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTranslateIgnoresBuild: build and watch are flowctl run --watch's
// alone. Translating a file that has them gives no warning about them,
// and the Compose file is the one of the same pipeline without them (the
// Kubernetes and Nomad outputs carry the file's text, so they differ by it).
func TestTranslateIgnoresBuild(t *testing.T) {
	const base = `name: tr
sources:
  - {name: gen, type: generate, config: {count: 3, data: {a: 1}}}
sinks:
  - {name: out, type: stdout, inputs: [tag]}
processors:
  - name: tag
    command: [bin/tag]
    protocol: stdio
    inputs: [gen]
`
	// Added at the end, so that every other line keeps its number.
	withBuild := base + "    build: go build -o bin/tag ./tag\n    watch: [\"tag/**/*.go\"]\n"
	dir := t.TempDir()
	plain, built := filepath.Join(dir, "plain", "tr.yaml"), filepath.Join(dir, "built", "tr.yaml")
	for p, text := range map[string]string{plain: base, built: withBuild} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFileAt(t, p, text)
	}
	for _, to := range []string{"docker-compose", "kubernetes", "nomad"} {
		t.Run(to, func(t *testing.T) {
			code, outPlain, errPlain := runFlowctl(t, "", "translate", "-f", plain, "--to", to)
			if code != 0 {
				t.Fatalf("translate without build: exit %d\n%s", code, errPlain)
			}
			code, outBuilt, errBuilt := runFlowctl(t, "", "translate", "-f", built, "--to", to)
			if code != 0 {
				t.Fatalf("translate with build: exit %d\n%s", code, errBuilt)
			}
			// The two files differ by their directory only.
			sameDir := func(s string) string {
				s = strings.ReplaceAll(s, "/built/", "/plain/")
				return strings.ReplaceAll(s, `\built\`, `\plain\`)
			}
			errBuilt, outBuilt = sameDir(errBuilt), sameDir(outBuilt)
			if errBuilt != errPlain {
				t.Errorf("build/watch changed the warnings:\n%s\nwithout them:\n%s", errBuilt, errPlain)
			}
			if to == "docker-compose" && outBuilt != outPlain {
				t.Errorf("build/watch changed the Compose file:\n%s\nwithout them:\n%s", outBuilt, outPlain)
			}
			if strings.Contains(outBuilt, "go build") && to == "docker-compose" {
				t.Error("the build command reached the Compose file")
			}
		})
	}
}
