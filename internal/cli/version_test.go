package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/components"
)

func TestVersionOptionalParts(t *testing.T) {
	for _, tt := range []struct {
		parts []string
		want  string
	}{
		{nil, "optional: none (build with go build -tags arrow ./cmd/flowctl for Arrow IPC output, CGO_ENABLED=1 go build -tags duckdb ./cmd/flowctl for DuckDB, -tags arrow,duckdb for both)"},
		{[]string{"duckdb"}, "optional: duckdb"},
		{[]string{"arrow", "duckdb"}, "optional: arrow, duckdb"},
	} {
		if got := optionalLine(tt.parts); got != tt.want {
			t.Errorf("optionalLine(%q) = %q, want %q", tt.parts, got, tt.want)
		}
	}
	var out bytes.Buffer
	r := newRoot(&globals{stdin: strings.NewReader(""), stdout: &out, stderr: &out}, "version")
	r.SetArgs([]string{"version"})
	if err := r.Execute(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "flowctl ") || lines[1] != optionalLine(components.OptionalParts()) {
		t.Errorf("version printed %q, want the version and the optional parts line", out.String())
	}
}
