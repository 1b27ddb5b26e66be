package boltfile

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// DefaultTimeout is how long Open waits for another process to let go of
// the file when Options.Timeout is 0.
const DefaultTimeout = time.Second

// Options tune Open.
type Options struct {
	// Kind names the file in messages: "server store", "checkpoint store".
	// Empty means "bbolt file".
	Kind string
	// Marker is the name of a top-level bucket every file of ours has. A
	// file with buckets but not this one is refused with ErrForeign. Empty
	// skips that test.
	Marker string
	// Timeout is how long to wait for another process's lock on the file
	// before failing with ErrLocked; 0 means DefaultTimeout.
	Timeout time.Duration
	// Logger receives a debug line per check; nil discards.
	Logger *slog.Logger
}

// Open opens the bbolt file at path for reading and writing, refusing a
// file it must not touch.
//
// A missing file is created (mode 0600, empty): the caller creates its
// Marker bucket and schema. An existing file is first opened read-only and
// checked — every page of every bucket read, then bbolt's consistency
// check (tx.Check) — and refused with an *Error when it is zero-length,
// not a bbolt file, truncated, inconsistent, faults or panics while being
// read, or has buckets but not Marker. A refused file is never written to.
// A valid bbolt file with no buckets at all (a crash between creating the
// file and laying out its schema) is opened as a new one.
//
// The check reads the whole file once: a few milliseconds for a few MB.
// bbolt keeps no checksum of data pages, so a value damaged in place (a
// flipped bit inside a stored record) passes; the caller's decoding of that
// record must report it.
func Open(path string, o Options) (*bbolt.DB, error) {
	if o.Kind == "" {
		o.Kind = "bbolt file"
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// New: bbolt creates and initialises it.
	case err != nil:
		return nil, fmt.Errorf("%s %s: %w", o.Kind, path, err)
	case !fi.Mode().IsRegular():
		return nil, refuse(o, path, ErrCorrupt, nil, "is not a regular file ("+fi.Mode().Type().String()+")")
	case fi.Size() == 0:
		// bbolt would take it for a new file and initialise it: every
		// pipeline the old one held would be forgotten without a word.
		return nil, refuse(o, path, ErrCorrupt, nil, "is empty (0 bytes): its contents were lost, perhaps in a crash or on a full disk")
	default:
		start := time.Now()
		if err := verify(path, fi.Size(), o); err != nil {
			return nil, err
		}
		o.Logger.Debug("checked bbolt file", "kind", o.Kind, "path", path, "bytes", fi.Size(), "took", time.Since(start))
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: o.Timeout})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, refuse(o, path, ErrLocked, err, fmt.Sprintf("is locked by another process (waited %s)", o.Timeout))
		}
		return nil, fmt.Errorf("%s %s: open: %w", o.Kind, path, err)
	}
	return db, nil
}

// verify opens the existing file read-only and reads all of it. It runs
// with panic-on-fault so that a page pointer past the end of the mapping —
// which would otherwise kill the process with SIGSEGV or SIGBUS — becomes
// a panic it recovers, and it reads every page itself before handing the
// file to tx.Check, whose goroutine has no such protection.
func verify(path string, size int64, o Options) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = refuse(o, path, ErrCorrupt, fmt.Errorf("panic: %v", r), fmt.Sprintf("is damaged: reading it failed (%v)", r))
		}
	}()
	// PreLoadFreelist reads the freelist here, under panic-on-fault, not
	// later in tx.Check's goroutine. A panic inside bbolt.Open itself
	// leaves its file descriptor open (bbolt returns no handle to close):
	// a leak only on the way to refusing the file, which ends a server.
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: o.Timeout, PreLoadFreelist: true})
	if err != nil {
		return openError(o, path, err)
	}
	defer db.Close()
	tx, err := db.Begin(false)
	if err != nil {
		return fmt.Errorf("%s %s: read: %w", o.Kind, path, err)
	}
	defer func() { _ = tx.Rollback() }()

	if tx.Size() > size {
		return refuse(o, path, ErrCorrupt, nil, fmt.Sprintf("is truncated: it has %d bytes, its header says %d", size, tx.Size()))
	}
	var buckets []string
	if err := tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
		buckets = append(buckets, string(name))
		touch(b)
		return nil
	}); err != nil {
		return refuse(o, path, ErrCorrupt, err, "is damaged: "+err.Error())
	}

	var problems []string
	n := 0
	for perr := range tx.Check() { // drain it all: the checker blocks on each send
		n++
		if len(problems) < 3 {
			problems = append(problems, perr.Error())
		}
	}
	if n > 0 {
		reason := "fails bbolt's consistency check: " + strings.Join(problems, "; ")
		if n > len(problems) {
			reason += fmt.Sprintf(" (and %d more)", n-len(problems))
		}
		return refuse(o, path, ErrCorrupt, nil, reason)
	}

	if o.Marker != "" && len(buckets) > 0 && !slices.Contains(buckets, o.Marker) {
		shown := buckets
		if len(shown) > 5 {
			shown = append(shown[:5:5], "…")
		}
		return refuse(o, path, ErrForeign, nil, fmt.Sprintf(
			"is a bbolt file another program wrote: it has no %q bucket (its buckets: %s)", o.Marker, strings.Join(shown, ", ")))
	}
	return nil
}

// touch reads every key and value of b and of the buckets nested in it, so
// that any fault happens here, on a goroutine that recovers it.
func touch(b *bbolt.Bucket) {
	var sum uint32
	_ = b.ForEach(func(k, v []byte) error {
		sum = crc32.Update(sum, crc32.IEEETable, k)
		if v == nil {
			if child := b.Bucket(k); child != nil {
				touch(child)
			}
			return nil
		}
		sum = crc32.Update(sum, crc32.IEEETable, v)
		return nil
	})
	_ = sum
}

// openError classifies what bbolt.Open said about an existing file.
func openError(o Options, path string, err error) error {
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return refuse(o, path, ErrLocked, err, fmt.Sprintf("is locked by another process (waited %s)", o.Timeout))
	case errors.Is(err, berrors.ErrInvalid):
		return refuse(o, path, ErrCorrupt, err, "is not a bbolt file (no valid bbolt header)")
	case errors.Is(err, berrors.ErrChecksum):
		return refuse(o, path, ErrCorrupt, err, "is damaged: both of its bbolt headers fail their checksum")
	case errors.Is(err, berrors.ErrVersionMismatch):
		return refuse(o, path, ErrCorrupt, err, "is not a bbolt file this flowctl can read (bbolt version mismatch)")
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%s %s: %w", o.Kind, path, err)
	}
	// Anything else bbolt says about an existing, non-empty file (a
	// header it cannot read, a size it cannot map) means it is not a file
	// it can use.
	return refuse(o, path, ErrCorrupt, err, "cannot be read as a bbolt file: "+err.Error())
}

func refuse(o Options, path string, sentinel, cause error, reason string) *Error {
	return &Error{Kind: o.Kind, Path: path, Reason: reason, Err: sentinel, Cause: cause}
}
