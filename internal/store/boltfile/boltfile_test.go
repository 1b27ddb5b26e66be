package boltfile_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/flowctl/flowctl/internal/store/boltfile"
)

var opts = boltfile.Options{Kind: "test store", Marker: "meta", Timeout: 100 * time.Millisecond}

// writeStore writes a bbolt file of ours: the marker bucket and enough
// records in nested buckets to need branch, leaf and overflow pages.
func writeStore(t testing.TB, path string) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bbolt.Tx) error {
		meta, err := tx.CreateBucket([]byte("meta"))
		if err != nil {
			return err
		}
		if err := meta.Put([]byte("schema_version"), []byte("2")); err != nil {
			return err
		}
		runs, err := tx.CreateBucket([]byte("runs"))
		if err != nil {
			return err
		}
		for p := range 3 {
			b, err := runs.CreateBucket(fmt.Appendf(nil, "pipeline-%d", p))
			if err != nil {
				return err
			}
			for i := range 500 {
				v := bytes.Repeat(fmt.Appendf(nil, "run %d of %d;", i, p), 20)
				if err := b.Put(binary.BigEndian.AppendUint64(nil, uint64(i)), v); err != nil {
					return err
				}
			}
		}
		big, err := tx.CreateBucket([]byte("specs"))
		if err != nil {
			return err
		}
		return big.Put([]byte("large"), bytes.Repeat([]byte("x"), 20000)) // overflow pages
	})
	if err != nil {
		t.Fatal(err)
	}
}

// runsRoot returns the root page of the nested bucket runs/pipeline-0 of
// the store at path: a branch page, since the bucket is larger than a page.
func runsRoot(t *testing.T, path string) int {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var root int
	if err := db.View(func(tx *bbolt.Tx) error {
		root = int(tx.Bucket([]byte("runs")).Bucket([]byte("pipeline-0")).Root())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return root
}

// branchPage returns the offset of the branch page at the root of
// runs/pipeline-0, checking the file's page size is the one the
// corruption cases assume.
func branchPage(t *testing.T, path string, b []byte) int {
	t.Helper()
	if got := binary.LittleEndian.Uint32(b[16+4+4:]); got != pageSize {
		t.Skipf("page size %d, the corruption cases assume %d", got, pageSize)
	}
	off := runsRoot(t, path) * pageSize
	if flags := binary.LittleEndian.Uint16(b[off+8:]); flags != 0x01 {
		t.Fatalf("root of runs/pipeline-0 has flags %#x, want a branch page", flags)
	}
	return off
}

// pageSize is bbolt's page size on the machines we test on.
const pageSize = 4096

func TestOpenRefuses(t *testing.T) {
	const ps = pageSize
	for _, tc := range []struct {
		name string
		// make writes the file at path.
		make func(t *testing.T, path string)
		want error
		// says is what the message must say besides the path and advice.
		says string
	}{
		{"zero-length", func(t *testing.T, path string) { write(t, path, nil) }, boltfile.ErrCorrupt, "is empty (0 bytes)"},
		{"text file", func(t *testing.T, path string) {
			write(t, path, []byte(strings.Repeat("name: orders\nsources: []\n", 400)))
		}, boltfile.ErrCorrupt, "is not a bbolt file"},
		{"short text file", func(t *testing.T, path string) { write(t, path, []byte("plain text")) }, boltfile.ErrCorrupt, ""},
		{"foreign bbolt file", func(t *testing.T, path string) {
			db, err := bbolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if err := db.Update(func(tx *bbolt.Tx) error {
				b, err := tx.CreateBucket([]byte("widgets"))
				if err != nil {
					return err
				}
				return b.Put([]byte("a"), []byte("1"))
			}); err != nil {
				t.Fatal(err)
			}
		}, boltfile.ErrForeign, `has no "meta" bucket (its buckets: widgets)`},
		{"page headers overwritten", func(t *testing.T, path string) {
			corrupt(t, path, func(b []byte) {
				for off := 2 * ps; off+64 <= len(b); off += ps {
					for i := 16; i < 64; i++ {
						b[off+i] ^= 0xff
					}
				}
			})
		}, boltfile.ErrCorrupt, "is damaged"},
		{"leaf page zeroed", func(t *testing.T, path string) {
			corrupt(t, path, func(b []byte) {
				// The first child of a branch page: a leaf in use.
				child := int(binary.LittleEndian.Uint64(b[branchPage(t, path, b)+16+8:]))
				clear(b[child*ps : (child+1)*ps])
			})
		}, boltfile.ErrCorrupt, ""},
		{"keys out of order", func(t *testing.T, path string) {
			corrupt(t, path, func(b []byte) {
				leaf := int(binary.LittleEndian.Uint64(b[branchPage(t, path, b)+16+8:])) * ps
				// The second element's key (8-byte big-endian 1) made
				// equal to the first's (0): only the consistency check
				// sees it.
				elem := leaf + 16 + 16
				pos := int(binary.LittleEndian.Uint32(b[elem+4:]))
				clear(b[elem+pos : elem+pos+8])
			})
		}, boltfile.ErrCorrupt, "fails bbolt's consistency check: key[1]=(hex)0000000000000000"},
		{"branch points past the end", func(t *testing.T, path string) {
			corrupt(t, path, func(b []byte) {
				// The first branch element's child page id: past the
				// mapping, where reading faults.
				binary.LittleEndian.PutUint64(b[branchPage(t, path, b)+16+8:], 1<<30)
			})
		}, boltfile.ErrCorrupt, ""},
		{"both headers damaged", func(t *testing.T, path string) {
			corrupt(t, path, func(b []byte) {
				for _, off := range []int{0, ps} {
					b[off+40] ^= 0xff
				}
			})
		}, boltfile.ErrCorrupt, ""},
		{"truncated", func(t *testing.T, path string) {
			corrupt(t, path, func(b []byte) {})
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, fi.Size()/2/ps*ps); err != nil {
				t.Fatal(err)
			}
		}, boltfile.ErrCorrupt, "is damaged"},
		{"directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}, boltfile.ErrCorrupt, "is not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "flowctl.db")
			tc.make(t, path)
			before := read(t, path)
			db, err := boltfile.Open(path, opts)
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			var fe *boltfile.Error
			if !errors.As(err, &fe) || !errors.Is(err, tc.want) {
				t.Fatalf("Open = %v; want a *boltfile.Error that is %v", err, tc.want)
			}
			msg := err.Error()
			for _, s := range []string{"test store " + path + ": ", tc.says, "move it aside or restore it from a backup; flowctl will not overwrite it"} {
				if !strings.Contains(msg, s) {
					t.Errorf("message %q does not say %q", msg, s)
				}
			}
			if fe.Path != path || fe.Reason == "" {
				t.Errorf("Error = %+v", fe)
			}
			if after := read(t, path); !bytes.Equal(before, after) {
				t.Error("refusing the file changed it")
			}
			t.Log(msg)
		})
	}
}

func TestOpenAccepts(t *testing.T) {
	t.Run("missing file is created", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "new.db")
		db, err := boltfile.Open(path, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.View(func(tx *bbolt.Tx) error {
			if tx.Bucket([]byte("meta")) != nil {
				t.Error("Open created the marker bucket; the caller does")
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("new file: %v, %v; want mode 0600", fi, err)
		}
	})
	t.Run("a store of ours", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "ours.db")
		writeStore(t, path)
		db, err := boltfile.Open(path, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.Update(func(tx *bbolt.Tx) error { return tx.Bucket([]byte("meta")).Put([]byte("k"), []byte("v")) }); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a bbolt file without buckets", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "bare.db")
		db, err := bbolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		db.Close()
		db, err = boltfile.Open(path, opts)
		if err != nil {
			t.Fatal(err)
		}
		db.Close()
	})
}

func TestOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "held.db")
	writeStore(t, path)
	held, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	_, err = boltfile.Open(path, opts)
	if !errors.Is(err, boltfile.ErrLocked) || errors.Is(err, boltfile.ErrCorrupt) || !strings.Contains(err.Error(), "is locked by another process") {
		t.Fatalf("Open = %v; want ErrLocked", err)
	}
	held.Close()
	db, err := boltfile.Open(path, opts)
	if err != nil {
		t.Fatalf("after the holder let go: %v", err)
	}
	db.Close()
}

// BenchmarkOpen measures the check on a store of a few MB.
func BenchmarkOpen(b *testing.B) {
	path := filepath.Join(b.TempDir(), "big.db")
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error {
		if _, err := tx.CreateBucket([]byte("meta")); err != nil {
			return err
		}
		runs, err := tx.CreateBucket([]byte("runs"))
		if err != nil {
			return err
		}
		for i := range 20000 {
			if err := runs.Put(binary.BigEndian.AppendUint64(nil, uint64(i)), bytes.Repeat([]byte("r"), 200)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	db.Close()
	fi, _ := os.Stat(path)
	for b.Loop() {
		db, err := boltfile.Open(path, opts)
		if err != nil {
			b.Fatal(err)
		}
		db.Close()
	}
	b.ReportMetric(float64(fi.Size())/1e6, "MB")
}

// corrupt writes a store of ours at path and damages its bytes with fn.
func corrupt(t *testing.T, path string, fn func([]byte)) {
	t.Helper()
	writeStore(t, path)
	b := read(t, path)
	fn(b)
	write(t, path, b)
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
