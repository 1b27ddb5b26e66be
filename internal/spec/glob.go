package spec

import (
	"errors"
	"path"
	"strings"
)

// A `watch` glob is matched against a path relative to the pipeline's
// directory, written with forward slashes. Its segments are path.Match
// patterns, and a segment `**` matches any number of directories (none
// included): `**/*.go` matches `main.go` and `cmd/x/main.go`.

// ValidGlob reports whether g is a glob `watch` accepts.
func ValidGlob(g string) error {
	if strings.TrimSpace(g) == "" {
		return errors.New("the glob is empty")
	}
	for _, seg := range strings.Split(path.Clean(strings.ReplaceAll(g, "\\", "/")), "/") {
		if seg == "**" {
			continue
		}
		if strings.Contains(seg, "**") {
			return errors.New("`**` must be a whole path segment, as in src/**/*.go")
		}
		if _, err := path.Match(seg, ""); err != nil {
			return errors.New("malformed pattern (an unclosed `[`?)")
		}
	}
	return nil
}

// MatchGlob reports whether rel, a slash-separated path relative to the
// pipeline's directory, matches the glob g.
func MatchGlob(g, rel string) bool {
	return matchSegs(strings.Split(path.Clean(g), "/"), strings.Split(path.Clean(rel), "/"))
}

func matchSegs(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := 0; i <= len(name); i++ {
				if matchSegs(pat[1:], name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, err := path.Match(pat[0], name[0]); err != nil || !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}

// GlobRoot is the directory part of g before its first pattern segment,
// and whether the glob reaches into subdirectories below it (it has more
// than one segment after the root, or a `**`). A watcher watches the root
// and, when deep, its subdirectories.
func GlobRoot(g string) (root string, deep bool) {
	segs := strings.Split(path.Clean(g), "/")
	i := 0
	for i < len(segs)-1 && !strings.ContainsAny(segs[i], "*?[\\") {
		i++
	}
	root = strings.Join(segs[:i], "/")
	if root == "" {
		root = "."
		if strings.HasPrefix(g, "/") {
			root = "/"
		}
	}
	rest := segs[i:]
	return root, len(rest) > 1 || contains(rest, "**")
}
