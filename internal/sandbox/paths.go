package sandbox

import (
	"path/filepath"
	"strings"
)

// parentDir is dir's parent (the root's is the root).
func parentDir(dir string) string { return filepath.Dir(dir) }

// isWithin reports whether path is dir or below it.
func isWithin(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}
