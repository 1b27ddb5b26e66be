package state

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/flowctl/flowctl/internal/flow"
)

func TestCommitLoadReset(t *testing.T) {
	root := t.TempDir()
	s, err := Open(root, "p", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := s.Load(); err != nil || len(c.Sources) != 0 || len(c.Sinks) != 0 {
		t.Fatalf("new store: %v, %v", c, err)
	}
	if !s.Updated().IsZero() {
		t.Fatal("a new store says it was committed")
	}
	c1 := flow.Checkpoint{
		Sources: map[string]map[string][]byte{"gen": {"": []byte(`{"next":5}`)}, "files": {"/a": []byte("1"), "/b": []byte("2")}},
		Sinks:   map[string]flow.SinkCheckpoint{"out": {Key: "/out.jsonl", Position: 42}},
	}
	if err := s.Commit(c1); err != nil {
		t.Fatal(err)
	}
	// A later commit merges: /b moves on, /a stays.
	if err := s.Commit(flow.Checkpoint{Sources: map[string]map[string][]byte{"files": {"/b": []byte("3")}}}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = Open(root, "p", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Sources["gen"][""]) != `{"next":5}` || string(got.Sources["files"]["/a"]) != "1" || string(got.Sources["files"]["/b"]) != "3" {
		t.Errorf("sources = %q", got.Sources)
	}
	if got.Sinks["out"] != (flow.SinkCheckpoint{Key: "/out.jsonl", Position: 42}) {
		t.Errorf("sinks = %v", got.Sinks)
	}
	if s.Updated().IsZero() {
		t.Error("Updated is zero after a commit")
	}
	if err := s.Reset(); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Load(); len(got.Sources) != 0 || len(got.Sinks) != 0 {
		t.Errorf("after Reset: %v", got)
	}
	if names, err := List(root); err != nil || len(names) != 1 || names[0] != "p" {
		t.Errorf("List = %v, %v", names, err)
	}
}

func TestSecondOpenIsRefused(t *testing.T) {
	root := t.TempDir()
	s, err := Open(root, "p", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = Open(root, "p", 50*time.Millisecond)
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("second open: %v, want ErrInUse", err)
	}
}

// Files that are not a flowctl state file are refused with a message
// naming the file and what to do, and left as they were.
func TestUnreadableFilesAreRefused(t *testing.T) {
	cases := map[string]func(t *testing.T, path string){
		"empty": func(t *testing.T, path string) { write(t, path, nil) },
		"text":  func(t *testing.T, path string) { write(t, path, []byte(strings.Repeat("not a database\n", 400))) },
		"foreign bbolt": func(t *testing.T, path string) {
			db, err := bbolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Update(func(tx *bbolt.Tx) error {
				_, err := tx.CreateBucket([]byte("someone-else"))
				return err
			}); err != nil {
				t.Fatal(err)
			}
			db.Close()
		},
		"damaged": func(t *testing.T, path string) {
			s, err := Open(filepath.Dir(filepath.Dir(path)), filepath.Base(filepath.Dir(path)), time.Second)
			if err != nil {
				t.Fatal(err)
			}
			pos := map[string][]byte{}
			for i := range 500 {
				pos[strings.Repeat("k", 50)+string(rune('a'+i%26))+string(rune('a'+i/26))] = []byte(strings.Repeat("v", 100))
			}
			if err := s.Commit(flow.Checkpoint{Sources: map[string]map[string][]byte{"src": pos}}); err != nil {
				t.Fatal(err)
			}
			s.Close()
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			// Scribble over every page after the two meta pages.
			for i := 2 * 4096; i < len(b); i += 7 {
				b[i] ^= 0x5a
			}
			write(t, path, b)
		},
	}
	for name, make := range cases {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			path := filepath.Join(Dir(root, "p"), FileName)
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				t.Fatal(err)
			}
			make(t, path)
			before, _ := os.ReadFile(path)
			s, err := Open(root, "p", time.Second)
			if err == nil {
				s.Close()
				t.Fatal("opened")
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "move it aside") {
				t.Fatalf("error = %v", err)
			}
			after, _ := os.ReadFile(path)
			if string(before) != string(after) {
				t.Error("the refused file was changed")
			}
		})
	}
}

func TestNewerSchemaIsRefused(t *testing.T) {
	root := t.TempDir()
	s, err := Open(root, "p", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketMeta).Put(keySchema, []byte("99")) }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(root, "p", time.Second); err == nil || !strings.Contains(err.Error(), "upgrade flowctl") {
		t.Fatalf("error = %v", err)
	}
}

func TestDirKeepsOnePathElement(t *testing.T) {
	for _, name := range []string{"a/b", "..", "", `c:\d`} {
		if d := Dir("/root", name); filepath.Dir(d) != "/root" {
			t.Errorf("Dir(%q) = %s", name, d)
		}
	}
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Opening a laid-out file and resetting one with nothing in it write
// nothing: each write transaction syncs the file, which a run pays for at
// start. The file's bytes stay as they were.
func TestOpenAndEmptyResetDoNotWrite(t *testing.T) {
	root := t.TempDir()
	open := func() *Store {
		t.Helper()
		s, err := Open(root, "p", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	s.Close()
	path := filepath.Join(Dir(root, "p"), FileName)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s = open()
	if err := s.Reset(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Fatal("Open and Reset of an empty store changed the file")
	}

	// With a checkpoint, Reset writes and the positions are gone, also
	// after the next Open.
	s = open()
	if err := s.Commit(flow.Checkpoint{Sinks: map[string]flow.SinkCheckpoint{"out": {Key: "k", Position: 1}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Reset(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open()
	defer s.Close()
	if c, err := s.Load(); err != nil || len(c.Sources) != 0 || len(c.Sinks) != 0 || !s.Updated().IsZero() {
		t.Fatalf("after Reset and Open: %v, %v, updated %v", c, err, s.Updated())
	}
}
