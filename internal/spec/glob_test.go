package spec

import "testing"

func TestMatchGlob(t *testing.T) {
	cases := []struct {
		glob, rel string
		want      bool
	}{
		{"*.go", "main.go", true},
		{"*.go", "cmd/main.go", false},
		{"**/*.go", "main.go", true},
		{"**/*.go", "cmd/x/main.go", true},
		{"cmd/x/**", "cmd/x/a/b.txt", true},
		{"cmd/x/**", "cmd/y/b.txt", false},
		{"src/*.py", "src/tag.py", true},
		{"src/*.py", "src/tag.pyc", false},
		{"./src/*.py", "src/tag.py", true},
		{"tag/main.go", "tag/main.go", true},
		{"tag/**/*_test.go", "tag/a/b/x_test.go", true},
	}
	for _, c := range cases {
		if got := MatchGlob(c.glob, c.rel); got != c.want {
			t.Errorf("MatchGlob(%q, %q) = %v, want %v", c.glob, c.rel, got, c.want)
		}
	}
}

func TestGlobRoot(t *testing.T) {
	cases := []struct {
		glob, root string
		deep       bool
	}{
		{"*.go", ".", false},
		{"tag/*.go", "tag", false},
		{"tag/main.go", "tag", false},
		{"cmd/*/main.go", "cmd", true},
		{"**/*.go", ".", true},
		{"cmd/x/**/*.go", "cmd/x", true},
	}
	for _, c := range cases {
		root, deep := GlobRoot(c.glob)
		if root != c.root || deep != c.deep {
			t.Errorf("GlobRoot(%q) = %q, %v; want %q, %v", c.glob, root, deep, c.root, c.deep)
		}
	}
}

func TestValidGlob(t *testing.T) {
	for g, ok := range map[string]bool{"*.go": true, "**/*.go": true, "src/[a-z.go": false, "src/a**.go": false, " ": false} {
		if err := ValidGlob(g); (err == nil) != ok {
			t.Errorf("ValidGlob(%q) = %v, want ok=%v", g, err, ok)
		}
	}
}
