package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// LogNames are the logs the sandbox directory holds: "pipeline" and the
// services', sorted.
func LogNames(f *File) ([]string, error) {
	m, err := filepath.Glob(filepath.Join(f.StateDir(), "logs", "*.log"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range m {
		out = append(out, strings.TrimSuffix(filepath.Base(p), ".log"))
	}
	sort.Strings(out)
	return out, nil
}

// LogPath is the log of name ("pipeline" or a service), or an error
// naming the logs there are.
func LogPath(f *File, name string) (string, error) {
	p := filepath.Join(f.StateDir(), "logs", name+".log")
	if _, err := os.Stat(p); err != nil {
		names, _ := LogNames(f)
		if len(names) == 0 {
			return "", fmt.Errorf("sandbox %s has no logs: start it with flowctl sandbox up", f.Name)
		}
		return "", fmt.Errorf("no log named %q: the sandbox has %s", name, strings.Join(names, ", "))
	}
	return p, nil
}

// Tail writes the last n lines of the file at path to w (all when n < 0)
// and returns the offset it read to.
func Tail(w io.Writer, path string, n int) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	off := int64(len(b))
	if n >= 0 {
		b = lastLines(b, n)
	}
	_, err = w.Write(b)
	return off, err
}

// lastLines is the last n lines of b.
func lastLines(b []byte, n int) []byte {
	if n == 0 {
		return nil
	}
	end := len(b)
	if end > 0 && b[end-1] == '\n' {
		end--
	}
	i := end
	for k := 0; k < n; k++ {
		j := bytes.LastIndexByte(b[:i], '\n')
		if j < 0 {
			return b
		}
		i = j
		if k == n-1 {
			return b[i+1:]
		}
	}
	return b
}

// Follow writes what is appended to the file at path after offset until
// ctx ends, looking every quarter second.
func Follow(ctx context.Context, w io.Writer, path string, offset int64) error {
	fh, err := os.Open(path)
	if err != nil {
		return err
	}
	defer fh.Close()
	if _, err := fh.Seek(offset, io.SeekStart); err != nil {
		return err
	}
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		if _, err := io.Copy(w, fh); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// printTail writes a log's last n lines, indented, for a failed start.
func printTail(w io.Writer, path string, n int) {
	var b bytes.Buffer
	if _, err := Tail(&b, path, n); err != nil {
		return
	}
	fmt.Fprintf(w, "last lines of %s:\n", path)
	for _, l := range strings.Split(strings.TrimRight(b.String(), "\n"), "\n") {
		fmt.Fprintf(w, "  %s\n", l)
	}
}
